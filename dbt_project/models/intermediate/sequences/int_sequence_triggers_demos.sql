-- The triggers of demo bookings (docs/demos.md#demo-bookings): `demo_request` (a contact form that
-- should start the nurture), `demo_booked`, `demo_canceled`, `demo_rescheduled` and `demo_completed`.
-- int_sequence_triggers unions it with the other domains; the columns are that model's, in its order.
with submissions as (
    select * from {{ ref('int_form_submissions_tagged') }}
),

demo_events as (
    select * from {{ ref('int_demo_events') }}
),

bookings as (
    select * from demo_events
    where event_type in ('booked', 'rescheduled')
),

-- when a booking stopped being the contact's booking: canceled, or moved by a reschedule
booking_replacements as (
    select invitee_uri, min(occurred_at) as replaced_at
    from (
        select invitee_uri, occurred_at
        from demo_events
        where event_type = 'canceled'
        union all
        select previous_invitee_uri, occurred_at from demo_events
        where event_type = 'rescheduled' and previous_invitee_uri is not null
    ) as replacements
    group by invitee_uri
),

bookings_with_replacement as (
    select bookings.*, booking_replacements.replaced_at
    from bookings
    left join booking_replacements on bookings.invitee_uri = booking_replacements.invitee_uri
),

-- clients per the CRM (docs/contacts-and-touches.md#client-flag); the CRM holds its current state only
clients as (
    select distinct email
    from {{ ref('stg_crm__contacts') }}
    where is_customer and is_valid_email and not is_archived
),

-- docs/demos.md#nurture-entry: a contact-form submission by someone with no demo booked who is not already a client
demo_requests as (
    select submissions.*
    from submissions
    where submissions.form_id = 'contact'
        and not exists (
            select 1 from clients
            where clients.email = submissions.email
        )
        and not exists (
            select 1 from bookings_with_replacement as booked
            where booked.email = submissions.email
                and booked.occurred_at <= submissions.submitted_at
                and booked.end_at > submissions.submitted_at
                and (booked.replaced_at is null or booked.replaced_at > submissions.submitted_at)
        )
)

select
    email,
    'demo_request' as trigger_name,
    submitted_at as occurred_at,
    submission_id as instance_key,
    cast(null as {{ dbt.type_timestamp() }}) as anchor_at,
    cast(null as {{ dbt.type_timestamp() }}) as withdrawn_at,
    form_id,
    webinar_code,
    cast(null as {{ dbt.type_string() }}) as product_ids,
    {{ json_object_text([
        ('first_name', 'first_name', 'string'),
        ('organization', 'organization', 'string'),
        ('segment', 'segment', 'string'),
        ('primary_audience', 'primary_audience', 'string'),
    ]) }} as params
from demo_requests

-- a reschedule is a new booking (a fresh confirmation, docs/demos.md#reschedule)
union all
select
    email,
    'demo_booked',
    occurred_at,
    invitee_uri,
    start_at,
    null,
    null, null, null,
    {{ json_object_text([
        ('event_name', 'event_name', 'string'),
        ('start_at', 'start_at', 'timestamp'),
        ('end_at', 'end_at', 'timestamp'),
        ('invitee_uri', 'invitee_uri', 'string'),
        ('is_reschedule', "event_type = 'rescheduled'", 'boolean'),
        ('previous_start_at', 'previous_start_at', 'timestamp'),
    ]) }}
from bookings

union all
select
    email,
    'demo_canceled',
    occurred_at,
    invitee_uri,
    start_at,
    null,
    null, null, null,
    {{ json_object_text([
        ('event_name', 'event_name', 'string'),
        ('start_at', 'start_at', 'timestamp'),
        ('invitee_uri', 'invitee_uri', 'string'),
    ]) }}
from demo_events
where event_type = 'canceled'

-- the old booking of a reschedule, keyed by its own invitee
union all
select
    email,
    'demo_rescheduled',
    occurred_at,
    previous_invitee_uri,
    previous_start_at,
    null,
    null, null, null,
    {{ json_object_text([
        ('event_name', 'event_name', 'string'),
        ('start_at', 'start_at', 'timestamp'),
        ('previous_start_at', 'previous_start_at', 'timestamp'),
        ('invitee_uri', 'invitee_uri', 'string'),
    ]) }}
from demo_events
where event_type = 'rescheduled' and previous_invitee_uri is not null

-- a booking that was neither canceled nor moved before it ended (docs/demos.md#after-the-demo)
union all
select
    email,
    'demo_completed',
    end_at,
    invitee_uri,
    start_at,
    null,
    null, null, null,
    {{ json_object_text([
        ('event_name', 'event_name', 'string'),
        ('start_at', 'start_at', 'timestamp'),
        ('end_at', 'end_at', 'timestamp'),
    ]) }}
from bookings_with_replacement
where replaced_at is null or replaced_at >= end_at
