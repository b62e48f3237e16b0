-- One row per tester registered now: its last event is a sighting, or its agent is
-- no longer synced (is_agent_synced false: its state is the last one known). A
-- tester removed by a successful run that synced its agent is not here.
--
-- drifted_fields is the latest answer's (null when nothing in it drifted). The var
-- kaleyra_rcs_pass_through_fields adds one text column per field named there, read
-- from that drifted_fields (macros/kaleyra_rcs_drifted_fields.sql, docs/models.md).
-- A field named like one of these columns, or like created_date (in the tap's schema,
-- left out here), becomes <name>_as_sent.
{%- set taken = [
    'id', 'agent_no', 'phoneno', 'test_status', 'status', 'override_dcs_check', 'carrierid',
    'created_at', 'first_seen_at', 'last_seen_at', 'is_agent_synced', 'drifted_fields',
    'created_date',
] %}
with events as (
    select * from {{ ref('int_kaleyra_rcs__tester_events') }}
    where id is not null
),

latest_event as (
    select id, kind
    from (
        select id, kind, row_number() over (partition by id order by event_at desc) as recency
        from events
    ) as ranked
    where recency = 1 and kind <> 'removed'
),

first_seen as (
    select id, min(event_at) as first_seen_at
    from events
    where kind = 'observed'
    group by id
)

select
    latest.id,
    latest.agent_no,
    latest.phoneno,
    latest.test_status,
    latest.status,
    latest.override_dcs_check,
    latest.carrierid,
    latest.created_at,
    first_seen.first_seen_at,
    latest.received_at as last_seen_at,
    latest_event.kind = 'observed' as is_agent_synced,
    latest.drifted_fields
    {%- for passed in kaleyra_rcs_pass_through_fields(taken) %},
    {{ kaleyra_rcs_drifted_field(passed.field, 'latest.drifted_fields') }} as {{ passed.column }}
    {%- endfor %}
from {{ ref('int_kaleyra_rcs__tester_latest_observations') }} as latest
inner join latest_event on latest.id = latest_event.id
inner join first_seen on latest.id = first_seen.id
