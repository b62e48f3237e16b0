{#-
  Which copy of a tester wins when one run received the same id more than once
  (listed twice by one agent, or by two agents): the copy under the highest agent
  number, and of that agent's copies the last in its list. Deterministic, whatever
  order the agents' answers arrived in; every model that picks one copy per run
  orders by this, so they all pick the same one.
-#}
{% macro kaleyra_rcs_copy_order() -%}
    synced_agent_no desc, position desc
{%- endmacro %}
