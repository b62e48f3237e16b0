-- One row per tester per period in one state (agent_no, test_status, status). A
-- period ends when the state changes, when a successful run that synced the
-- tester's agent no longer lists it (removed), or when a successful run no longer
-- syncs its agent (agent_no_longer_synced); the current period has valid_to null.
with events as (
    select
        id,
        run_id,
        event_at,
        kind,
        agent_no,
        test_status,
        status,
        lead(kind) over (partition by id order by event_at) as next_kind,
        lead(event_at) over (partition by id order by event_at) as next_event_at,
        lead(agent_no) over (partition by id order by event_at) as next_agent_no
    from {{ ref('int_kaleyra_rcs__tester_events') }}
    where id is not null
)

select
    id,
    agent_no,
    test_status,
    status,
    event_at as valid_from,
    next_event_at as valid_to,
    case
        when next_kind is null then cast(null as {{ dbt.type_string() }})
        when next_kind <> 'observed' then next_kind
        when next_agent_no is distinct from agent_no then 'agent_changed'
        else 'status_changed'
    end as end_reason,
    run_id as first_observed_run_id
from events
where kind = 'observed'
