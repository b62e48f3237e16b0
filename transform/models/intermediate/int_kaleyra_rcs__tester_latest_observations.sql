-- Each tester as the tap last received it, whatever happened since: its attributes
-- (phone number, carrier, created_at, drifted_fields) for kaleyra_rcs__testers.
-- Incremental: a build reads only the runs started after the last one it has, and
-- replaces those testers' rows; a full rebuild gives the same rows.
--
-- on_schema_change append_new_columns: a table built before a column existed gets
-- it, null in the rows already built. Right for drifted_fields, null in every
-- observation loaded before the tap had it. A column computed from data already
-- built would need `dbt build --full-refresh` instead, which this would not ask for.
{{
    config(
        materialized='incremental',
        unique_key='id',
        on_schema_change='append_new_columns',
        pre_hook="{{ kaleyra_rcs_index_observations() }}",
    )
}}
{% set built_through = kaleyra_rcs_built_through() %}

select
    id, run_id, run_started_at, received_at, synced_agent_no, agent_no, phoneno, test_status,
    status, override_dcs_check, carrierid, created_at, drifted_fields
from (
    select
        observations.*,
        row_number() over (
            partition by id order by run_started_at desc, {{ kaleyra_rcs_copy_order() }}
        ) as recency
    from {{ ref('stg_kaleyra_rcs__tester_observations') }} as observations
    {% if is_incremental() %}
        where run_started_at > (select max(run_started_at) from {{ this }})
        {%- if built_through %} and run_started_at > {{ built_through }}{% endif %}
    {% endif %}
) as latest
where recency = 1
