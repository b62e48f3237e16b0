{#-
  The latest run_started_at an incremental model has built, as a SQL literal; none
  on a full build, in a unit test, or when nothing was built yet.

  The models also filter on `> (select max(run_started_at) from this)`, which is
  what decides; this literal repeats it as a constant, because an engine can skip
  the raw table's old rows only for a constant (DuckDB's and Snowflake's min/max
  per block, a PostgreSQL BRIN index). Without it every build reads every
  observation ever loaded, and its time grows with the number of runs.
-#}
{% macro kaleyra_rcs_built_through() -%}
    {%- if execute and is_incremental() and model.resource_type != 'unit_test' -%}
        {%- set found = run_query('select max(run_started_at) from ' ~ this).columns[0].values()[0] -%}
        {%- if found is not none -%}
            {{- return("cast('" ~ found ~ "' as " ~ dbt.type_timestamp() ~ ")") -}}
        {%- endif -%}
    {%- endif -%}
    {{- return(none) -}}
{%- endmacro %}
