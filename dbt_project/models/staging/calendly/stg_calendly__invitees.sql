-- One row per invitee from the REST API (reconciliation). `status` is the current one: a canceled
-- invitee carries both its created and its canceled event keys.
with source as (
    select * from {{ source_or_empty('raw_calendly', 'invitees') }}
)

select
    uri as invitee_uri,
    event as event_uri,
    created_event_key,
    canceled_event_key,
    email as email_raw,
    {{ normalize_email('email') }} as email,
    {{ is_valid_email(normalize_email('email')) }} as is_valid_email,
    name as invitee_name,
    status as invitee_status,
    coalesce(rescheduled, false) as is_rescheduled,
    old_invitee as old_invitee_uri,
    new_invitee as new_invitee_uri,
    {{ utc_timestamp('cancellation__created_at') }} as canceled_at,
    cancellation__reason as cancel_reason,
    cancellation__canceler_type as canceler_type,
    tracking__utm_source as utm_source,
    tracking__utm_medium as utm_medium,
    tracking__utm_campaign as utm_campaign,
    tracking__utm_content as utm_content,
    tracking__utm_term as utm_term,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('updated_at') }} as updated_at,
    -- the booking itself; the cancellation (if any) happened at canceled_at
    {{ utc_timestamp('created_at') }} as occurred_at
from source
