-- Every tester every run received, typed alike on every warehouse: the raw history.
-- Rows of a run that failed later are here too; they are history, dated when received.
-- drifted_fields (macros/kaleyra_rcs_drifted_fields.sql) is null in a raw table
-- loaded before the tap had it, until the loader adds the column on its next run.
{%- set raw = source('kaleyra_rcs', 'testers_observations') %}
{%- set raw_columns = adapter.get_columns_in_relation(raw) | map(attribute='name') | map('lower') | list if execute else [] %}
select
    cast(run_id as {{ dbt.type_string() }}) as run_id,
    cast(run_started_at as {{ dbt.type_timestamp() }}) as run_started_at,
    cast(synced_agent_no as {{ dbt.type_string() }}) as synced_agent_no,
    cast(position as {{ dbt.type_bigint() }}) as position,
    cast(received_at as {{ dbt.type_timestamp() }}) as received_at,
    cast(id as {{ dbt.type_string() }}) as id,
    cast(agent_no as {{ dbt.type_string() }}) as agent_no,
    cast(phoneno as {{ dbt.type_string() }}) as phoneno,
    cast(test_status as {{ dbt.type_string() }}) as test_status,
    cast(status as {{ dbt.type_string() }}) as status,
    cast(override_dcs_check as {{ dbt.type_boolean() }}) as override_dcs_check,
    cast(carrierid as {{ dbt.type_bigint() }}) as carrierid,
    cast(created_at as {{ dbt.type_timestamp() }}) as created_at,
    cast({{ 'drifted_fields' if 'drifted_fields' in raw_columns else 'null' }} as {{ dbt.type_string() }})
        as drifted_fields
from {{ raw }}
