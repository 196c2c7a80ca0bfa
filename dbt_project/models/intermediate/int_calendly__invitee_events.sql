-- Calendly invitee events (invitee.created / invitee.canceled) up to as_of, one row per event key:
-- the webhook deliveries and the REST reconciliation copy deduplicated (docs/sources.md), so the pipeline is
-- complete from REST alone and a redelivered or out-of-order webhook changes nothing.
{%- set columns = [
    'event_key', 'event_name', 'invitee_uri', 'event_uri', 'email', 'email_raw', 'is_valid_email',
    'invitee_name', 'invitee_status', 'is_rescheduled', 'old_invitee_uri', 'new_invitee_uri',
    'meeting_name', 'scheduled_start_at', 'scheduled_end_at', 'canceled_at', 'cancel_reason',
    'utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term', 'occurred_at',
] %}

with webhook_copies as (
    select
        {{ columns | join(', ') }},
        received_at,
        'webhook' as seen_via,
        1 as seen_via_rank
    from {{ ref('stg_calendly__webhook_events') }}
    where event_name in ('invitee.created', 'invitee.canceled')
),

invitees as (
    select
        invitees.*,
        events.meeting_name,
        events.scheduled_start_at,
        events.scheduled_end_at
    from {{ ref('stg_calendly__invitees') }} as invitees
    left join {{ ref('stg_calendly__scheduled_events') }} as events
        on invitees.event_uri = events.event_uri
),

-- REST shows an invitee's current state: the booking is rebuilt as it was when made
api_created as (
    select
        created_event_key as event_key,
        'invitee.created' as event_name,
        invitee_uri, event_uri, email, email_raw, is_valid_email, invitee_name,
        'active' as invitee_status,
        false as is_rescheduled,
        old_invitee_uri,
        cast(null as {{ dbt.type_string() }}) as new_invitee_uri,
        meeting_name, scheduled_start_at, scheduled_end_at,
        cast(null as {{ dbt.type_timestamp() }}) as canceled_at,
        cast(null as {{ dbt.type_string() }}) as cancel_reason,
        utm_source, utm_medium, utm_campaign, utm_content, utm_term,
        created_at as occurred_at,
        cast(null as {{ dbt.type_timestamp() }}) as received_at,
        'api' as seen_via,
        2 as seen_via_rank
    from invitees
),

api_canceled as (
    select
        canceled_event_key as event_key,
        'invitee.canceled' as event_name,
        invitee_uri, event_uri, email, email_raw, is_valid_email, invitee_name,
        'canceled' as invitee_status,
        is_rescheduled,
        old_invitee_uri,
        new_invitee_uri,
        meeting_name, scheduled_start_at, scheduled_end_at,
        canceled_at,
        cancel_reason,
        utm_source, utm_medium, utm_campaign, utm_content, utm_term,
        coalesce(canceled_at, updated_at) as occurred_at,
        cast(null as {{ dbt.type_timestamp() }}) as received_at,
        'api' as seen_via,
        2 as seen_via_rank
    from invitees
    where canceled_event_key is not null
),

copies as (
    select * from webhook_copies
    union all
    select * from api_created
    union all
    select * from api_canceled
),

ranked as (
    select
        *,
        row_number() over (partition by event_key order by seen_via_rank, received_at, occurred_at) as copy_number
    from copies
)

select
    {{ columns | join(', ') }},
    seen_via as first_seen_via
from ranked
where copy_number = 1
    and occurred_at <= {{ as_of() }}
