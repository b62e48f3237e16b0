-- One row per tester registered now: present in the latest successful run.
with present as (
    select id from {{ ref('int_kaleyra_rcs__tester_presence') }}
    where is_present
),

first_seen as (
    select id, min(valid_from) as first_seen_at
    from {{ ref('kaleyra_rcs__tester_status_history') }}
    group by id
)

select
    testers.id,
    testers.agent_no,
    testers.phoneno,
    testers.test_status,
    testers.status,
    testers.override_dcs_check,
    testers.carrierid,
    testers.created_at,
    first_seen.first_seen_at,
    testers.seen_at as last_seen_at
from {{ ref('stg_kaleyra_rcs__testers') }} as testers
inner join present on present.id = testers.id
left join first_seen on first_seen.id = testers.id
