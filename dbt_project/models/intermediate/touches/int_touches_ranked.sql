-- Every inbound touch of a contact up to as_of (docs/contacts-and-touches.md#touch-source, docs/attribution.md#utms-end-to-end): form submissions, Calendly
-- bookings and paid Stripe checkouts, each with the source it came from, numbered per contact from the
-- earliest (the original touch) and flagged as the latest.
--
-- Source rule, the same for every kind of touch: the UTM parameters when utm_source is present, else
-- the referrer's domain (mapped by the referrer_sources seed, else the domain itself, medium
-- 'referral'), else 'direct'. Only forms carry a referrer; UTM parameters travel in form fields,
-- Calendly's booking-link tracking and Stripe Checkout metadata.
with form_touches as (
    select
        {{ dbt.concat(["'form:'", 'submission_id']) }} as touch_id,
        email,
        occurred_at,
        'form' as touch_type,
        form_id,
        submission_id as source_record_id,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_content,
        utm_term,
        referrer,
        referrer_domain
    from {{ ref('int_forms__submissions') }}
    where is_valid_email
),

-- a booking is an invitee.created without old_invitee; the new half of a reschedule moves a booking
-- that already counted as a touch
booking_touches as (
    select
        {{ dbt.concat(["'booking:'", 'invitee_uri']) }} as touch_id,
        email,
        occurred_at,
        'booking' as touch_type,
        cast(null as {{ dbt.type_string() }}) as form_id,
        invitee_uri as source_record_id,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_content,
        utm_term,
        cast(null as {{ dbt.type_string() }}) as referrer,
        cast(null as {{ dbt.type_string() }}) as referrer_domain
    from {{ ref('int_calendly__invitee_events') }}
    where event_name = 'invitee.created'
        and old_invitee_uri is null
        and is_valid_email
),

purchase_touches as (
    select
        {{ dbt.concat(["'purchase:'", 'session_id']) }} as touch_id,
        email,
        purchased_at as occurred_at,
        'purchase' as touch_type,
        cast(null as {{ dbt.type_string() }}) as form_id,
        session_id as source_record_id,
        utm_source,
        utm_medium,
        utm_campaign,
        cast(null as {{ dbt.type_string() }}) as utm_content,
        cast(null as {{ dbt.type_string() }}) as utm_term,
        cast(null as {{ dbt.type_string() }}) as referrer,
        cast(null as {{ dbt.type_string() }}) as referrer_domain
    from {{ ref('int_purchases') }}
),

touches as (
    select * from form_touches
    union all
    select * from booking_touches
    union all
    select * from purchase_touches
),

referrer_sources as (
    select referrer_domain, source, medium from {{ ref('referrer_sources') }}
),

sourced as (
    select
        touches.touch_id,
        touches.email,
        touches.occurred_at,
        touches.touch_type,
        touches.form_id,
        touches.source_record_id,
        case
            when touches.utm_source is not null then 'utm'
            when touches.referrer_domain is not null then 'referrer'
            else 'direct'
        end as source_basis,
        case
            when touches.utm_source is not null then touches.utm_source
            when touches.referrer_domain is not null
                then coalesce(referrer_sources.source, touches.referrer_domain)
            else 'direct'
        end as source,
        case
            when touches.utm_source is not null then touches.utm_medium
            when touches.referrer_domain is not null then coalesce(referrer_sources.medium, 'referral')
        end as medium,
        case when touches.utm_source is not null then touches.utm_campaign end as campaign,
        case when touches.utm_source is not null then touches.utm_content end as content,
        case when touches.utm_source is not null then touches.utm_term end as term,
        touches.referrer
    from touches
    left join referrer_sources on touches.referrer_domain = referrer_sources.referrer_domain
    where touches.occurred_at <= {{ as_of() }}
),

-- Ties (touches at the same moment) break the same way in both directions: a touch with a known
-- source before a direct one, then form, booking, purchase, then the touch id, so the original and
-- the latest touch are deterministic.
ordered as (
    select
        *,
        case when source_basis = 'direct' then 1 else 0 end as direct_order,
        case touch_type when 'form' then 1 when 'booking' then 2 else 3 end as type_order
    from sourced
)

select
    touch_id,
    email,
    occurred_at,
    touch_type,
    form_id,
    source_record_id,
    source_basis,
    source,
    medium,
    campaign,
    content,
    term,
    referrer,
    row_number() over (
        partition by email order by occurred_at, direct_order, type_order, touch_id
    ) as touch_number,
    row_number() over (
        partition by email order by occurred_at desc, direct_order asc, type_order asc, touch_id asc
    ) = 1 as is_latest_touch
from ordered
