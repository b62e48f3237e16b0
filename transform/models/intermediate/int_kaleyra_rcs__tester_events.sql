{#-
  Everything that happened to each tester, as events: the history models read only
  this. Built from the raw observations and run records alone, so dropping it (or
  `dbt build --full-refresh`) rebuilds exactly the same rows.

  kind                      when
  observed                  a run received the tester in a state (agent_no,
                            test_status, status) other than its last known one, or
                            for the first time, or again after it was gone
  removed                   a successful run synced the tester's agent and did not
                            list it; dated when that agent's answer arrived
  agent_no_longer_synced    a successful run did not sync the tester's agent; dated
                            when that run started
  successful_run / failed_run
                            one marker per run built (id null): the model is
                            incremental, and the markers say how far it has got

  Only successful runs remove anything. Observations of a failed run are history:
  they are events dated when received, but the run's missing testers are not
  removed. A tester whose agent is no longer synced is not removed either; if the
  agent is synced again and no longer lists it, it is removed then.

  Incremental: a build reads only the runs started after the last run it built,
  and each tester's last event as the state to continue from, so its cost does not
  grow with the number of runs. A run must be loaded completely before dbt builds
  it (the jobs run dbt after the loader); see docs/models.md.
-#}
{{
    config(
        materialized='incremental',
        on_schema_change='fail',
        pre_hook="{{ kaleyra_rcs_index_observations() }}",
    )
}}
{% set built_through = kaleyra_rcs_built_through() %}

with processed as (
    {% if is_incremental() %}
        select max(run_started_at) as through from {{ this }}
    {% else %}
        select cast(null as {{ dbt.type_timestamp() }}) as through
    {% endif %}
),

new_observations as (
    select observations.*
    from {{ ref('stg_kaleyra_rcs__tester_observations') }} as observations
    cross join processed
    where (processed.through is null or observations.run_started_at > processed.through)
        {%- if built_through %} and observations.run_started_at > {{ built_through }}{% endif %}
),

successful_runs as (
    select runs.run_id, runs.started_at
    from {{ ref('stg_kaleyra_rcs__testers_sync_runs') }} as runs
    cross join processed
    where processed.through is null or runs.started_at > processed.through
),

-- The agents each new successful run synced completely.
synced_agents as (
    select agents.run_id, agents.agent_no, agents.received_at, runs.started_at as run_started_at
    from {{ ref('stg_kaleyra_rcs__testers_sync_run_agents') }} as agents
    inner join successful_runs as runs on agents.run_id = runs.run_id
),

new_runs as (
    select run_id, started_at, true as is_successful
    from successful_runs
    union all
    select distinct run_id, run_started_at as started_at, false as is_successful
    from new_observations
    where run_id not in (select run_id from successful_runs)
),

-- For each new run, and for the last run already built, the next successful run
-- after it: the run that tells whether a tester seen then is still there.
run_order as (
    select
        started_at,
        min(case when is_successful then started_at end) over (
            order by started_at rows between 1 following and unbounded following
        ) as next_successful_run_at
    from (
        select started_at, is_successful from new_runs
        union all
        select through as started_at, false as is_successful from processed
        where through is not null
    ) as runs
),

-- One copy per tester per run (see the macro kaleyra_rcs_copy_order).
observed as (
    select id, run_id, run_started_at, received_at, synced_agent_no, agent_no, test_status, status
    from (
        select
            new_observations.*,
            row_number() over (
                partition by run_id, id order by {{ kaleyra_rcs_copy_order() }}
            ) as copy_rank
        from new_observations
    ) as copies
    where copy_rank = 1
),

-- Each tester's last event so far: the state the new runs continue from, as of the
-- last run built. Removed testers are left out only to keep the build small (their
-- number grows run after run): a sighting after a removal starts a new period
-- either way.
carried_over as (
    {% if is_incremental() %}
        select
            latest.id,
            processed.through as run_started_at,
            latest.event_at,
            latest.kind,
            latest.synced_agent_no,
            latest.agent_no,
            latest.test_status,
            latest.status
        from (
            select
                events.*,
                row_number() over (partition by id order by event_at desc) as recency
            from {{ this }} as events
            where id is not null
        ) as latest
        cross join processed
        where latest.recency = 1 and latest.kind <> 'removed'
    {% else %}
        select
            cast(null as {{ dbt.type_string() }}) as id,
            cast(null as {{ dbt.type_timestamp() }}) as run_started_at,
            cast(null as {{ dbt.type_timestamp() }}) as event_at,
            cast(null as {{ dbt.type_string() }}) as kind,
            cast(null as {{ dbt.type_string() }}) as synced_agent_no,
            cast(null as {{ dbt.type_string() }}) as agent_no,
            cast(null as {{ dbt.type_string() }}) as test_status,
            cast(null as {{ dbt.type_string() }}) as status
        from processed
        where 1 = 0
    {% endif %}
),

timeline as (
    select
        id, run_id, run_started_at, received_at as event_at, 'observed' as kind,
        synced_agent_no, agent_no, test_status, status, false as is_carried_over
    from observed
    union all
    select
        id, cast(null as {{ dbt.type_string() }}) as run_id, run_started_at, event_at, kind,
        synced_agent_no, agent_no, test_status, status, true as is_carried_over
    from carried_over
),

{%- set by_time = 'partition by timeline.id order by timeline.run_started_at, timeline.event_at' %}
sequenced as (
    select
        timeline.*,
        run_order.next_successful_run_at,
        {%- for column in ['kind', 'agent_no', 'test_status', 'status'] %}
        lag(timeline.{{ column }}) over ({{ by_time }}) as previous_{{ column }},
        {%- endfor %}
        lag(run_order.next_successful_run_at) over ({{ by_time }})
            as previous_next_successful_run_at,
        lead(timeline.run_started_at) over ({{ by_time }}) as next_observed_run_at
    from timeline
    inner join run_order on timeline.run_started_at = run_order.started_at
),

-- A new state: first seen, seen again after it was gone (a successful run between
-- the two sightings did not list it), or changed.
changes as (
    select id, run_id, run_started_at, event_at, kind, synced_agent_no, agent_no, test_status, status
    from sequenced
    where not is_carried_over
        and (
            previous_kind is null
            or previous_kind <> 'observed'
            or previous_next_successful_run_at < run_started_at
            or agent_no is distinct from previous_agent_no
            or test_status is distinct from previous_test_status
            or status is distinct from previous_status
        )
),

-- A tester present until a successful run did not list it: removed if that run
-- synced its agent, else its agent is no longer synced.
first_absences as (
    select
        sequenced.id,
        sequenced.synced_agent_no,
        sequenced.agent_no,
        sequenced.test_status,
        sequenced.status,
        sequenced.next_observed_run_at,
        sequenced.next_successful_run_at as absent_run_at
    from sequenced
    where sequenced.kind = 'observed'
        and sequenced.next_successful_run_at is not null
        and (
            sequenced.next_observed_run_at is null
            or sequenced.next_observed_run_at > sequenced.next_successful_run_at
        )
),

absences as (
    select
        first_absences.*,
        synced_agents.run_id as synced_run_id,
        synced_agents.received_at as synced_at
    from first_absences
    left join synced_agents
        on first_absences.absent_run_at = synced_agents.run_started_at
        and first_absences.synced_agent_no = synced_agents.agent_no
),

-- Testers whose agent is not synced (now, or already before these runs): removed
-- at the first later successful run that syncs the agent again without them.
unsynced as (
    select id, synced_agent_no, agent_no, test_status, status, next_observed_run_at,
        absent_run_at as since_run_at
    from absences
    where synced_run_id is null
    union all
    select id, synced_agent_no, agent_no, test_status, status, next_observed_run_at,
        run_started_at as since_run_at
    from sequenced
    where is_carried_over and kind = 'agent_no_longer_synced'
),

resynced as (
    select
        unsynced.id,
        unsynced.synced_agent_no,
        unsynced.agent_no,
        unsynced.test_status,
        unsynced.status,
        unsynced.next_observed_run_at,
        min(synced_agents.run_started_at) as resynced_run_at
    from unsynced
    inner join synced_agents
        on unsynced.synced_agent_no = synced_agents.agent_no
        and synced_agents.run_started_at > unsynced.since_run_at
    group by 1, 2, 3, 4, 5, 6
),

events as (
    select * from changes

    union all

    select
        absences.id,
        runs.run_id,
        absences.absent_run_at as run_started_at,
        coalesce(absences.synced_at, absences.absent_run_at) as event_at,
        case
            when absences.synced_run_id is null then 'agent_no_longer_synced' else 'removed'
        end as kind,
        absences.synced_agent_no,
        absences.agent_no,
        absences.test_status,
        absences.status
    from absences
    inner join successful_runs as runs on absences.absent_run_at = runs.started_at

    union all

    select
        resynced.id,
        synced_agents.run_id,
        resynced.resynced_run_at as run_started_at,
        synced_agents.received_at as event_at,
        'removed' as kind,
        resynced.synced_agent_no,
        resynced.agent_no,
        resynced.test_status,
        resynced.status
    from resynced
    inner join synced_agents
        on resynced.resynced_run_at = synced_agents.run_started_at
        and resynced.synced_agent_no = synced_agents.agent_no
    where resynced.next_observed_run_at is null
        or resynced.next_observed_run_at > resynced.resynced_run_at

    union all

    select
        cast(null as {{ dbt.type_string() }}) as id,
        run_id,
        started_at as run_started_at,
        started_at as event_at,
        case when is_successful then 'successful_run' else 'failed_run' end as kind,
        cast(null as {{ dbt.type_string() }}) as synced_agent_no,
        cast(null as {{ dbt.type_string() }}) as agent_no,
        cast(null as {{ dbt.type_string() }}) as test_status,
        cast(null as {{ dbt.type_string() }}) as status
    from new_runs
)

select
    {{ dbt.concat(["kind", "':'", "run_id", "':'", "coalesce(id, '')"]) }} as event_id,
    id,
    run_id,
    run_started_at,
    event_at,
    kind,
    synced_agent_no,
    agent_no,
    test_status,
    status
from events
