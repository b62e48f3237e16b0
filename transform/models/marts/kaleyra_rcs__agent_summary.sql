-- One row per agent with testers registered now, counted from kaleyra_rcs__testers.
-- ACCEPTED, PENDING, REJECTED and EXPIRED are the known test_status values; any
-- other value (or none) counts in other_status.
{% set known = ['ACCEPTED', 'PENDING', 'REJECTED', 'EXPIRED'] %}
select
    agent_no,
    cast(count(*) as {{ dbt.type_bigint() }}) as testers,
    {% for status in known -%}
    cast(
        sum(case when test_status = '{{ status }}' then 1 else 0 end) as {{ dbt.type_bigint() }}
    ) as {{ status | lower }},
    {% endfor -%}
    cast(
        sum(
            case
                when test_status is null or test_status not in ('{{ known | join("', '") }}') then 1
                else 0
            end
        ) as {{ dbt.type_bigint() }}
    ) as other_status,
    min(case when test_status = 'PENDING' then created_at end) as oldest_pending_created_at
from {{ ref('kaleyra_rcs__testers') }}
group by agent_no
