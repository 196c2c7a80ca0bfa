-- One row per scheduled event (a meeting slot) from the REST API.
with source as (
    select * from {{ source_or_empty('raw_calendly', 'scheduled_events') }}
)

select
    uri as event_uri,
    name as meeting_name,
    status as event_status,
    event_type as event_type_uri,
    {{ utc_timestamp('start_time') }} as scheduled_start_at,
    {{ utc_timestamp('end_time') }} as scheduled_end_at,
    location__type as location_type,
    location__join_url as join_url,
    {{ utc_timestamp('cancellation__created_at') }} as canceled_at,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('updated_at') }} as updated_at,
    {{ utc_timestamp('created_at') }} as occurred_at
from source
