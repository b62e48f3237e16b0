-- Each tester has at most one open (valid_to null) period in its history.
select id, count(*) as open_periods
from {{ ref('kaleyra_rcs__tester_status_history') }}
where valid_to is null
group by id
having count(*) > 1
