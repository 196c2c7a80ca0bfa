-- The demo history as of as_of, one row per booking, reschedule or plain cancellation (int_demo_events):
-- what the CRM's timeline notes record (sync_crm__notes), and the moments fct_demo_bookings folds into one
-- row per booking.
select
    demo_event_key,
    email,
    event_type,
    occurred_at,
    invitee_uri,
    previous_invitee_uri,
    event_name,
    start_at,
    previous_start_at,
    end_at,
    utm_source,
    utm_medium,
    utm_campaign
from {{ ref('int_demo_events') }}
where occurred_at <= {{ as_of() }}
