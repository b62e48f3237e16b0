-- The agents each successful run synced completely. A failed run has no row.
select
    cast(run_id as {{ dbt.type_string() }}) as run_id,
    cast(run_started_at as {{ dbt.type_timestamp() }}) as run_started_at,
    cast(agent_no as {{ dbt.type_string() }}) as agent_no,
    cast(received_at as {{ dbt.type_timestamp() }}) as received_at,
    cast(testers as {{ dbt.type_bigint() }}) as testers
from {{ source('kaleyra_rcs', 'testers_sync_run_agents') }}
