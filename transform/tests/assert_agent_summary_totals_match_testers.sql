-- The summary counts every current tester of a synced agent exactly once, and each
-- agent's status columns add up to its total.
with summary as (
    select
        sum(testers) as testers,
        sum(accepted + pending + rejected + expired + other_status) as by_status
    from {{ ref('kaleyra_rcs__agent_summary') }}
),

testers as (
    select count(*) as testers
    from {{ ref('kaleyra_rcs__testers') }}
    where is_agent_synced
        and agent_no in (select agent_no from {{ ref('kaleyra_rcs__agent_summary') }})
)

select summary.testers, summary.by_status, testers.testers as expected
from summary
cross join testers
where coalesce(summary.testers, 0) != testers.testers
    or coalesce(summary.by_status, 0) != testers.testers
