{#-
  dbt run-operation kaleyra_rcs_add_drifted_fields_column
  (in this project: meltano invoke dbt-bigquery:prepare-tables, the first task of
  the testers-bigquery job)

  Adds the text column drifted_fields to the loader's testers and
  testers_observations tables when a table exists without it. target-bigquery
  (z3 0.7.2) does not add a column the schema gained to an existing table, and its
  MERGE then fails; the other loaders add it themselves, but this works on any
  warehouse. A table that does not exist yet (first run) or has the column is
  left alone, so it runs before every load at the cost of a metadata look-up.
-#}
{% macro kaleyra_rcs_add_drifted_fields_column() %}
    {%- for name in ['testers', 'testers_observations'] -%}
        {%- set found = load_relation(source('kaleyra_rcs', name)) -%}
        {%- if found is none -%}
            {{ log('kaleyra_rcs: ' ~ name ~ ' does not exist yet; the loader creates it with drifted_fields', info=True) }}
        {%- elif 'drifted_fields' in adapter.get_columns_in_relation(found) | map(attribute='name') | map('lower') | list -%}
            {{ log('kaleyra_rcs: ' ~ found ~ ' has drifted_fields', info=True) }}
        {%- else -%}
            {%- call statement('add_drifted_fields', auto_begin=True) -%}
                alter table {{ found }} add column drifted_fields {{ dbt.type_string() }}
            {%- endcall -%}
            {%- do adapter.commit() -%}
            {{ log('kaleyra_rcs: ' ~ found ~ ': drifted_fields added', info=True) }}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}
