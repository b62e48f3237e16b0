-- One row per agent the latest successful run synced, zeros included, counted from
-- kaleyra_rcs__testers. ACCEPTED, PENDING, REJECTED and EXPIRED are the known
-- test_status values; any other value (or none) counts in other_status.
{% set known = ['ACCEPTED', 'PENDING', 'REJECTED', 'EXPIRED'] %}
with latest_run as (
    select run_id
    from (
        select run_id, row_number() over (order by started_at desc) as recency
        from {{ ref('stg_kaleyra_rcs__testers_sync_runs') }}
    ) as runs
    where recency = 1
),

agents as (
    select agents.agent_no, agents.received_at as last_synced_at
    from {{ ref('stg_kaleyra_rcs__testers_sync_run_agents') }} as agents
    inner join latest_run on agents.run_id = latest_run.run_id
),

testers as (
    select * from {{ ref('kaleyra_rcs__testers') }}
    where is_agent_synced
)

select
    agents.agent_no,
    cast(count(testers.id) as {{ dbt.type_bigint() }}) as testers,
    {% for status in known -%}
    cast(
        sum(case when testers.test_status = '{{ status }}' then 1 else 0 end)
        as {{ dbt.type_bigint() }}
    ) as {{ status | lower }},
    {% endfor -%}
    cast(
        sum(
            case
                when testers.id is null then 0
                when testers.test_status is null
                    or testers.test_status not in ('{{ known | join("', '") }}') then 1
                else 0
            end
        ) as {{ dbt.type_bigint() }}
    ) as other_status,
    min(case when testers.test_status = 'PENDING' then testers.created_at end)
        as oldest_pending_created_at,
    agents.last_synced_at
from agents
left join testers on agents.agent_no = testers.agent_no
group by agents.agent_no, agents.last_synced_at
