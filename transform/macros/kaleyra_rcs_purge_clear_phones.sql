{#-
  dbt run-operation kaleyra_rcs_purge_clear_phones
  (in this project: meltano invoke dbt-<warehouse>:purge-clear-phones)

  Sets phoneno to NULL wherever it holds a clear number rather than a keyed hash
  (tap setting phoneno_hash_key): any value that is not 64 lower-case hex digits.
  Hashing starts with the first run that has the key; what earlier runs loaded
  stays in the append-only testers_observations and, for testers not seen since,
  in the loader's testers table and the incremental model that keeps each
  tester's latest observation. This removes it there, and in the current-testers
  table, so the next ordinary build has nothing clear to carry on. Hashes and
  NULLs are left as they are, so running it again changes nothing.

  A relation that does not exist (no model built yet) or has no phoneno column
  (deselected) is skipped. It is a logical change: a warehouse's own history
  (PostgreSQL's dead rows until VACUUM, Snowflake Time Travel and Fail-safe,
  BigQuery time travel, backups) keeps the old values for its retention time;
  see docs/capabilities.md.
-#}
{% macro kaleyra_rcs_purge_clear_phones() %}
    {%- set relations = [
        source('kaleyra_rcs', 'testers_observations'),
        source('kaleyra_rcs', 'testers'),
        ref('int_kaleyra_rcs__tester_latest_observations'),
        ref('kaleyra_rcs__testers'),
    ] -%}
    {%- set clear = 'phoneno is not null and not ' ~ kaleyra_rcs_is_phone_hash('phoneno') -%}
    {%- for relation in relations -%}
        {%- set found = load_relation(relation) -%}
        {%- if found is none -%}
            {{ log('kaleyra_rcs: ' ~ relation ~ ' does not exist; skipped', info=True) }}
        {%- elif 'phoneno' not in adapter.get_columns_in_relation(found) | map(attribute='name') | map('lower') | list -%}
            {{ log('kaleyra_rcs: ' ~ found ~ ' has no phoneno column; skipped', info=True) }}
        {%- else -%}
            {%- set counted = run_query('select count(*) from ' ~ found ~ ' where ' ~ clear) -%}
            {%- set clear_rows = counted.columns[0].values()[0] | int -%}
            {%- if clear_rows > 0 -%}
                {%- call statement('purge_clear_phones', auto_begin=True) -%}
                    update {{ found }} set phoneno = null where {{ clear }}
                {%- endcall -%}
                {%- do adapter.commit() -%}
            {%- endif -%}
            {{ log('kaleyra_rcs: ' ~ found ~ ': ' ~ clear_rows ~ ' clear phone numbers set to NULL', info=True) }}
        {%- endif -%}
    {%- endfor -%}
{% endmacro %}


{#-
  Whether a phoneno is a keyed hash: exactly 64 characters, all of them 0-9 or
  a-f. translate() drops every character given with no replacement, and it and
  length() behave the same on DuckDB, PostgreSQL, Snowflake and BigQuery: no
  per-warehouse regular expression. (ltrim with a set of characters would too,
  but the Snowflake emulator the tests use ignores the set.)
-#}
{% macro kaleyra_rcs_is_phone_hash(column) -%}
    (length({{ column }}) = 64 and translate({{ column }}, '0123456789abcdef', '') = '')
{%- endmacro %}
