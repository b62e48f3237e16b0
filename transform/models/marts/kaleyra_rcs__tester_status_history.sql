-- One row per tester per period with the same (test_status, status). A period ends
-- when the tester's status changes, or at the first successful run that no longer
-- saw it; the current period has valid_to null.
select
    id,
    agent_no,
    test_status,
    status,
    dbt_valid_from as valid_from,
    dbt_valid_to as valid_to
from {{ ref('kaleyra_rcs__tester_status_snapshot') }}
where is_present
