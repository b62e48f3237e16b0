-- A warning, not an error: testers whose latest answer had fields the tap's schema
-- does not have, or values whose type no longer fits their column (drifted_fields;
-- docs/models.md, "Fields the schema does not have"). dbt names how many; the build
-- goes on. Each row names the tester and what drifted.
{{ config(severity='warn') }}
select id, agent_no, last_seen_at, drifted_fields
from {{ ref('kaleyra_rcs__testers') }}
where drifted_fields is not null
