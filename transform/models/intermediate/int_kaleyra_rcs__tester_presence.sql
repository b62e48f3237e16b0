-- Whether each stored tester was present in the latest successful run, and since when
-- its current state holds. The snapshot reads this view after every successful run.
--
-- A tester is present when the latest successful run received it: the tap stamps
-- each tester with the moment its agent's answer arrived, always after the run's
-- start. A tester last received before that start was absent from the run, so it
-- was removed at the first successful run that started after it was last seen.
with runs as (
    select started_at from {{ ref('stg_kaleyra_rcs__testers_sync_runs') }}
),

latest_run as (
    select max(started_at) as started_at from runs
),

testers as (
    select * from {{ ref('stg_kaleyra_rcs__testers') }}
),

removals as (
    select testers.id, min(runs.started_at) as removed_at
    from testers
    inner join runs on runs.started_at > testers.seen_at
    group by testers.id
)

select
    testers.id,
    testers.agent_no,
    testers.test_status,
    testers.status,
    testers.seen_at >= latest_run.started_at as is_present,
    case
        when testers.seen_at >= latest_run.started_at then testers.seen_at
        else removals.removed_at
    end as observed_at
from testers
cross join latest_run
left join removals on removals.id = testers.id
where latest_run.started_at is not null
