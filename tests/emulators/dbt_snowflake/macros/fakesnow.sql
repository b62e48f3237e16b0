{#-
  dbt-snowflake 1.11.6 macros replaced for the fakesnow emulator only. Each one
  writes SQL that real Snowflake runs and fakesnow (DuckDB underneath) cannot;
  what they replace is therefore not proven here (docs/warehouses.md).
-#}

{#- 1. Unit tests: fakesnow takes TEMPORARY tables only in its own "temp" catalog,
    and dbt names them database.schema.name. A transient table instead; dbt drops
    it after the test. -#}
{% macro snowflake__create_table_temporary_sql(relation, compiled_code) -%}
    {{ dbt.snowflake__create_table_transient_sql(relation, compiled_code) }}
{%- endmacro %}

{#- 2. Incremental models: the same for the temporary __dbt_tmp view. -#}
{% macro snowflake__create_view_as_with_temp_flag(relation, sql, is_temporary=False) -%}
    {{ dbt.snowflake__create_view_as_with_temp_flag(relation, sql, False) }}
{%- endmacro %}

{#- 3. Incremental MERGE on a unique_key. fakesnow rewrites a MERGE into a query in
    which the unqualified INSERT ... VALUES (col, ...) list is ambiguous ("Ambiguous
    reference to column name"), and inside dbt-snowflake's begin; ... commit; its
    MERGE also writes fakesnow's own bookkeeping database, which DuckDB refuses in
    one transaction. The same MERGE as dbt's default, with the VALUES qualified and
    no explicit transaction. Appends (no unique_key) keep dbt-snowflake's own SQL. -#}
{% macro snowflake__get_merge_sql(target, source_sql, unique_key, dest_columns, incremental_predicates) -%}
    {%- if unique_key is none -%}
        {{ return(dbt.snowflake__get_merge_sql(target, source_sql, unique_key, dest_columns, incremental_predicates)) }}
    {%- endif -%}
    {%- set predicates = [] if incremental_predicates is none else [] + incremental_predicates -%}
    {%- set columns = get_quoted_csv(dest_columns | map(attribute="name")).split(', ') -%}
    {%- set update_columns = get_merge_update_columns(config.get('merge_update_columns'), config.get('merge_exclude_columns'), dest_columns) -%}
    {%- set keys = unique_key if (unique_key is sequence and unique_key is not string) else [unique_key] -%}
    {%- for key in keys -%}
        {%- do predicates.append("DBT_INTERNAL_SOURCE." ~ key ~ " = DBT_INTERNAL_DEST." ~ key) -%}
    {%- endfor -%}
    merge into {{ target }} as DBT_INTERNAL_DEST
        using {{ source_sql }} as DBT_INTERNAL_SOURCE
        on {{ "(" ~ predicates | join(") and (") ~ ")" }}
    when matched then update set
        {% for column in update_columns -%}
            {{ column }} = DBT_INTERNAL_SOURCE.{{ column }}{% if not loop.last %}, {% endif %}
        {%- endfor %}
    when not matched then insert ({{ columns | join(', ') }})
    values ({% for column in columns %}DBT_INTERNAL_SOURCE.{{ column }}{% if not loop.last %}, {% endif %}{% endfor %})
{%- endmacro %}
