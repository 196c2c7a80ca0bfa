-- Every demo booking up to as_of, one row per Calendly invitee: the booking history that fct_demos (each
-- contact's current demo) folds away. A reschedule is a new row that names the booking it replaced; the
-- replaced row then reads 'rescheduled'. So counting rows where is_reschedule is false counts demos booked,
-- and counting 'completed' rows counts demos held.
with demo_events as (
    select * from {{ ref('int_demo_events') }}
),

bookings as (
    select
        invitee_uri,
        max(email) as email,
        max(case when event_type in ('booked', 'rescheduled') then occurred_at end) as booked_at,
        max(case when event_type = 'canceled' then occurred_at end) as canceled_at,
        max(case when event_type = 'rescheduled' then 1 else 0 end) = 1 as is_reschedule,
        max(previous_invitee_uri) as previous_invitee_uri,
        max(event_name) as event_name,
        max(start_at) as start_at,
        max(end_at) as end_at,
        max(utm_source) as utm_source,
        max(utm_medium) as utm_medium,
        max(utm_campaign) as utm_campaign
    from demo_events
    group by invitee_uri
),

successors as (
    select previous_invitee_uri as invitee_uri, min(invitee_uri) as rescheduled_to_invitee_uri
    from bookings
    where previous_invitee_uri is not null
    group by previous_invitee_uri
)

select
    bookings.invitee_uri,
    bookings.email,
    bookings.booked_at,
    bookings.is_reschedule,
    bookings.previous_invitee_uri,
    successors.rescheduled_to_invitee_uri,
    bookings.event_name,
    bookings.start_at,
    bookings.end_at,
    bookings.canceled_at,
    case
        when successors.invitee_uri is not null then 'rescheduled'
        when bookings.canceled_at is not null then 'canceled'
        when bookings.end_at <= {{ as_of() }} then 'completed'
        else 'booked'
    end as booking_status,
    bookings.utm_source,
    bookings.utm_medium,
    bookings.utm_campaign
from bookings
left join successors on bookings.invitee_uri = successors.invitee_uri
