-- The trigger stream that the sequences (seeds/sequences.csv) enter, exit, pause and resume on
-- (docs/sequences.md#the-sequences-file): one row per lifecycle moment of a contact up to as_of, with the instance key it opens
-- (a booking, a webinar, a purchase...), its anchor time and its params as JSON text. Every trigger
-- name a sequence may use is made here and listed in _sequences__models.yml. Each row also carries what a
-- targeted sequence's entry filters (the entry_* columns of the file) match: the submission's form and
-- webinar code, the purchase's products, and the contact's segment and audience as tagged at that moment.
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
),

webinar_registrations as (
    select
        *,
        {{ utc_to_local('starts_at', 'time_zone') }} as starts_at_local,
        {{ utc_to_local('ends_at', 'time_zone') }} as ends_at_local
    from {{ ref('int_webinar_registrations_deduplicated') }}
),

purchases as (
    select * from {{ ref('int_purchases') }}
),

tier_history as (
    select * from {{ ref('int_engagement_tier_history') }}
),

status_changes as (
    select * from {{ ref('int_customer_status_changes') }}
    where is_transition
),

-- the two names a submission triggers under (below)
form_name_kinds as (
    select true as is_own_form
    union all
    select false as is_own_form
),

triggers as (
    -- every submission is `form_<form_id>` and `any_form` (a sequence entering on any_form names its forms
    -- in entry_forms)
    select
        submissions.email,
        case
            when form_names.is_own_form then {{ dbt.concat(["'form_'", 'submissions.form_id']) }}
            else 'any_form'
        end as trigger_name,
        submissions.submitted_at as occurred_at,
        submissions.submission_id as instance_key,
        cast(null as {{ dbt.type_timestamp() }}) as anchor_at,
        cast(null as {{ dbt.type_timestamp() }}) as withdrawn_at,
        submissions.form_id,
        submissions.webinar_code,
        cast(null as {{ dbt.type_string() }}) as product_ids,
        {{ json_object_text([
            ('form_id', 'form_id', 'string'),
            ('first_name', 'first_name', 'string'),
            ('last_name', 'last_name', 'string'),
            ('organization', 'organization', 'string'),
            ('segment', 'segment', 'string'),
            ('primary_audience', 'primary_audience', 'string'),
            ('submitted_at', 'submitted_at', 'timestamp'),
        ]) }} as params
    from submissions
    cross join form_name_kinds as form_names

    union all
    select
        email,
        'demo_request',
        submitted_at,
        submission_id,
        null,
        null,
        form_id,
        webinar_code,
        null,
        {{ json_object_text([
            ('first_name', 'first_name', 'string'),
            ('organization', 'organization', 'string'),
            ('segment', 'segment', 'string'),
            ('primary_audience', 'primary_audience', 'string'),
        ]) }}
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

    union all
    select
        email,
        'purchase',
        purchased_at,
        session_id,
        null,
        refunded_at,
        null,
        null,
        {{ dbt.replace('product_ids', "', '", "'|'") }},
        {{ json_object_text([
            ('session_id', 'session_id', 'string'),
            ('purchased_at', 'purchased_at', 'timestamp'),
            ('amount_total', 'amount_total', 'number'),
            ('currency', 'currency', 'string'),
            ('product_ids', 'product_ids', 'string'),
            ('product_names', 'product_names', 'string'),
        ]) }}
    from purchases

    union all
    select
        email,
        'webinar_registration',
        registered_at,
        webinar_code as instance_key,
        starts_at,
        null,
        'webinar',
        webinar_code,
        null,
        {{ json_object_text([
            ('webinar_code', 'webinar_code', 'string'),
            ('webinar_title', 'webinar_title', 'string'),
            ('starts_at', 'starts_at', 'timestamp'),
            ('zoom_url', 'zoom_url', 'string'),
            ('calendar_url', dbt.concat([
                "'https://www.addevent.com/dir/?title='", url_encode('webinar_title'),
                "'&start='", url_encode(us_date_time_text('starts_at_local')),
                "'&end='", url_encode(us_date_time_text('ends_at_local')),
                "'&timezone='", url_encode('time_zone'),
                "'&location='", url_encode('zoom_url'),
                "'&description='", url_encode(dbt.concat(["'Join on Zoom: '", 'zoom_url'])),
            ]), 'string'),
            ('survey_url', dbt.concat([
                'survey_base_url',
                "case when survey_base_url like '%?%' then '&' else '?' end",
                "'email='", url_encode('email'),
                "'&phone='", url_encode("coalesce(phone, '')"),
            ]), 'string'),
        ]) }}
    from webinar_registrations

    union all
    select
        email,
        'became_quiet',
        valid_from,
        {{ iso_utc_text('valid_from') }},
        null,
        null,
        null, null, null,
        {{ json_object_text([('previous_tier', 'previous_tier', 'string')]) }}
    from tier_history
    where tier = 'quiet' and previous_tier in ('engaged', 'most_engaged')

    union all
    select
        email,
        'engaged_again',
        valid_from,
        {{ iso_utc_text('valid_from') }},
        null,
        null,
        null, null, null,
        {{ json_object_text([('tier', 'tier', 'string')]) }}
    from tier_history
    where tier in ('engaged', 'most_engaged') and previous_tier = 'quiet'

    union all
    select
        email,
        'churned',
        changed_at,
        {{ iso_utc_text('changed_at') }},
        null,
        null,
        null, null, null,
        {{ json_object_text([
            ('churned_at', 'changed_at', 'timestamp'),
            ('reason', 'reason', 'string'),
            ('subscription_id', 'subscription_id', 'string'),
        ]) }}
    from status_changes
    where status = 'churned'

    union all
    select
        email,
        'reactivated',
        changed_at,
        {{ iso_utc_text('changed_at') }},
        null,
        null,
        null, null, null,
        {{ json_object_text([('reason', 'reason', 'string')]) }}
    from status_changes
    where status = 'active' and previous_status = 'churned'
),

-- Segment and audience as dim_contacts tags the contact, as of each trigger: forms tag them from the
-- organization type, purchases tag B2C and the product's audience; the latest tag with a known audience
-- wins, `Other` only when no tag has one. A trigger's own submission or purchase
-- counts (it happened at that moment).
tags as (
    select email, segment, coalesce(primary_audience, 'Other') as primary_audience,
        submitted_at as tagged_at, submission_id as tag_id
    from submissions
    union all
    select email, 'B2C', coalesce(primary_audience, 'Other'), purchased_at, session_id
    from purchases
),

tags_at_moments as (
    select
        moments.email,
        moments.occurred_at,
        tags.segment,
        tags.primary_audience,
        row_number() over (
            partition by moments.email, moments.occurred_at
            order by case when tags.primary_audience = 'Other' then 1 else 0 end, tags.tagged_at desc,
                tags.tag_id desc
        ) as tag_rank
    from (select distinct email, occurred_at from triggers) as moments
    inner join tags on moments.email = tags.email and moments.occurred_at >= tags.tagged_at
)

select
    triggers.email,
    triggers.trigger_name as trigger,
    triggers.occurred_at,
    triggers.instance_key,
    triggers.anchor_at,
    triggers.withdrawn_at,
    triggers.params,
    tags.segment,
    coalesce(tags.primary_audience, 'Other') as primary_audience,
    triggers.form_id,
    triggers.webinar_code,
    triggers.product_ids
from triggers
left join tags_at_moments as tags
    on triggers.email = tags.email and triggers.occurred_at = tags.occurred_at and tags.tag_rank = 1
where triggers.occurred_at <= {{ as_of() }}
    and {{ is_valid_email('triggers.email') }}
