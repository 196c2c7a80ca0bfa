-- Demo lifecycle events (docs/demos.md#demo-bookings), one row per booking, reschedule or plain cancellation, up to as_of
-- (int_calendly__invitee_events filters the time and deduplicates webhook and REST copies).
--
-- Calendly reports a reschedule as two events, in either order (Calendly's guide to reschedule payloads): invitee.canceled
-- of the old invitee (rescheduled = true, new_invitee) and invitee.created of the new one (old_invitee).
-- The created side alone is the reschedule: it becomes one 'rescheduled' row. The canceled side never
-- becomes a 'canceled' row, so the lead is never shown as canceled in between: until the created side
-- arrives, the old booking simply stands (at the old time).
with invitee_events as (
    select * from {{ ref('int_calendly__invitee_events') }}
    where is_valid_email
),

created as (
    select * from invitee_events
    where event_name = 'invitee.created'
),

canceled as (
    select * from invitee_events
    where event_name = 'invitee.canceled'
),

-- each invitee's slot: both of its events carry the scheduled event
slots as (
    select
        invitee_uri,
        min(scheduled_start_at) as start_at,
        min(scheduled_end_at) as end_at
    from invitee_events
    group by invitee_uri
),

bookings as (
    select
        created.event_key as demo_event_key,
        created.email,
        case when created.old_invitee_uri is null then 'booked' else 'rescheduled' end as event_type,
        created.occurred_at,
        created.invitee_uri,
        created.meeting_name as event_name,
        created.scheduled_start_at as start_at,
        created.scheduled_end_at as end_at,
        previous.start_at as previous_start_at,
        created.old_invitee_uri as previous_invitee_uri,
        created.utm_source,
        created.utm_medium,
        created.utm_campaign
    from created
    left join slots as previous on created.old_invitee_uri = previous.invitee_uri
),

-- a cancellation is plain when Calendly does not mark it rescheduled and no new invitee names it
plain_cancellations as (
    select
        canceled.event_key as demo_event_key,
        canceled.email,
        'canceled' as event_type,
        canceled.occurred_at,
        canceled.invitee_uri,
        canceled.meeting_name as event_name,
        coalesce(canceled.scheduled_start_at, slots.start_at) as start_at,
        coalesce(canceled.scheduled_end_at, slots.end_at) as end_at,
        cast(null as {{ dbt.type_timestamp() }}) as previous_start_at,
        cast(null as {{ dbt.type_string() }}) as previous_invitee_uri,
        canceled.utm_source,
        canceled.utm_medium,
        canceled.utm_campaign
    from canceled
    left join slots on canceled.invitee_uri = slots.invitee_uri
    where not canceled.is_rescheduled
        and not exists (
            select 1 from created as successor
            where successor.old_invitee_uri = canceled.invitee_uri
        )
)

select * from bookings
union all
select * from plain_cancellations
