-- Runs of the tap that synced every agent. A failed or interrupted run has no row.
select
    cast(run_id as {{ dbt.type_string() }}) as run_id,
    cast(started_at as {{ dbt.type_timestamp() }}) as started_at,
    cast(finished_at as {{ dbt.type_timestamp() }}) as finished_at,
    cast(agents as {{ dbt.type_bigint() }}) as agents,
    cast(testers as {{ dbt.type_bigint() }}) as testers,
    cast(duplicate_ids as {{ dbt.type_bigint() }}) as duplicate_ids
from {{ source('kaleyra_rcs', 'testers_sync_runs') }}
