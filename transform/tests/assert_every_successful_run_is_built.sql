-- Every successful run is in the history as one. A run whose record was loaded
-- only after dbt had built its testers (dbt ran during a load) would be missing its
-- removals: rebuild with `dbt build --full-refresh` (docs/models.md).
select runs.run_id
from {{ ref('stg_kaleyra_rcs__testers_sync_runs') }} as runs
left join {{ ref('int_kaleyra_rcs__tester_events') }} as events
    on runs.run_id = events.run_id and events.kind = 'successful_run'
where events.run_id is null
