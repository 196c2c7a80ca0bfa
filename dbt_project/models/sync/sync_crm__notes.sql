-- Desired HubSpot notes (docs/contacts-and-touches.md#history-is-appended, docs/demos.md#demo-bookings): history is appended, never replaced, so every booking,
-- reschedule and plain cancellation up to as_of is one note on the contact's timeline, keyed by
-- `note_key` (the Calendly event it records, deterministic). A note, once created, never changes.
-- hs_timestamp (when it happened, epoch milliseconds) and hs_note_body are HubSpot's note properties.
{%- set epoch = "cast('1970-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")" %}
{%- set string = dbt.type_string() %}

with demo_events as (
    select * from {{ ref('fct_demo_events') }}
),

texts as (
    select
        demo_event_key,
        email,
        event_type,
        occurred_at,
        coalesce(event_name, 'Demo') as event_name,
        coalesce({{ dbt.concat(['cast(start_at as ' ~ string ~ ')', "' UTC'"]) }}, 'an unknown time') as start_text,
        coalesce({{ dbt.concat(['cast(previous_start_at as ' ~ string ~ ')', "' UTC'"]) }}, 'an unknown time')
            as previous_start_text,
        case
            when utm_source is null and utm_medium is null and utm_campaign is null then 'none'
            else {{ dbt.concat([
                "'utm_source='", "coalesce(utm_source, '-')",
                "', utm_medium='", "coalesce(utm_medium, '-')",
                "', utm_campaign='", "coalesce(utm_campaign, '-')",
            ]) }}
        end as tracking_text
    from demo_events
)

select
    cast(demo_event_key as {{ string }}) as note_key,
    cast(email as {{ string }}) as email,
    cast(event_type as {{ string }}) as note_type,
    cast({{ dbt.datediff(epoch, 'occurred_at', 'millisecond') }} as {{ string }}) as hs_timestamp,
    cast(
        case event_type
            when 'booked' then {{ dbt.concat([
                "'Demo booked via Calendly: '", 'event_name', "' on '", 'start_text',
                "'. Tracking: '", 'tracking_text', "'.'"]) }}
            when 'rescheduled' then {{ dbt.concat([
                "'Demo rescheduled from '", 'previous_start_text', "' to '", 'start_text',
                "' via Calendly: '", 'event_name', "'. Tracking: '", 'tracking_text', "'.'"]) }}
            when 'canceled' then {{ dbt.concat([
                "'Demo canceled via Calendly: '", 'event_name', "' on '", 'start_text',
                "'. Tracking: '", 'tracking_text', "'.'"]) }}
        end
    as {{ string }}) as hs_note_body
from texts
