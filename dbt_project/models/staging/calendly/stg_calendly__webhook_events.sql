-- One row per delivered Calendly webhook (invitee.created / invitee.canceled). A redelivery is a second
-- row with the same event_key; intermediate models deduplicate.
with source as (
    select * from {{ source_or_empty('raw_calendly', 'webhook_events') }}
)

select
    id as webhook_id,
    dedup_key as event_key,
    event as event_name,
    payload__uri as invitee_uri,
    coalesce(payload__event, payload__scheduled_event__uri) as event_uri,
    payload__email as email_raw,
    {{ normalize_email('payload__email') }} as email,
    {{ is_valid_email(normalize_email('payload__email')) }} as is_valid_email,
    payload__name as invitee_name,
    payload__status as invitee_status,
    coalesce(payload__rescheduled, false) as is_rescheduled,
    payload__old_invitee as old_invitee_uri,
    payload__new_invitee as new_invitee_uri,
    payload__scheduled_event__name as meeting_name,
    {{ utc_timestamp('payload__scheduled_event__start_time') }} as scheduled_start_at,
    {{ utc_timestamp('payload__scheduled_event__end_time') }} as scheduled_end_at,
    {{ utc_timestamp('payload__cancellation__created_at') }} as canceled_at,
    payload__cancellation__reason as cancel_reason,
    payload__cancellation__canceler_type as canceler_type,
    payload__tracking__utm_source as utm_source,
    payload__tracking__utm_medium as utm_medium,
    payload__tracking__utm_campaign as utm_campaign,
    payload__tracking__utm_content as utm_content,
    payload__tracking__utm_term as utm_term,
    {{ utc_timestamp('payload__created_at') }} as invitee_created_at,
    -- when it happened: the cancellation's time for a cancellation, else the envelope's
    case
        when event = 'invitee.canceled'
            then {{ utc_timestamp('coalesce(payload__cancellation__created_at, created_at)') }}
        else {{ utc_timestamp('coalesce(created_at, payload__created_at)') }}
    end as occurred_at,
    {{ utc_timestamp('received_at') }} as received_at,
    landing_file,
    landing_line
from source
