-- One row per contact as of as_of (docs/field-names.md): who they are, where they came from, and their state in
-- every lifecycle flow. A contact is a valid, normalized email with a touch (form, booking, purchase), a
-- demo or a customer status. Names come from the forms, else the CRM, else Stripe's or Calendly's full
-- name; the CRM is also read for IS_CLIENT and for attribution that must not be overwritten. Both sync
-- payloads (sync_crm__contacts, sync_marketing__contacts) are projections of this table, so both systems
-- get the same contacts.
{%- set profile_columns = ['first_name', 'last_name', 'organization', 'phone'] %}

with forms as (
    select * from {{ ref('int_form_submissions_tagged') }}
),

purchases as (
    select * from {{ ref('int_purchases') }}
),

attribution as (
    select * from {{ ref('int_touch_attribution_pivoted') }}
),

demos as (
    select * from {{ ref('fct_demos') }}
),

customer_status as (
    select * from {{ ref('fct_customer_status') }}
),

contacts as (
    select email from attribution
    union
    select email from demos
    union
    select email from customer_status
),

-- the CRM's record of the contact as the CRM holds it now (the latest modified one, should HubSpot hold
-- the email twice)
crm as (
    select *
    from (
        select
            *,
            row_number() over (partition by email order by last_modified_at desc, contact_id asc) as crm_rank
        from {{ ref('stg_crm__contacts') }}
        where is_valid_email and not is_archived
    ) as ranked
    where crm_rank = 1
),

{% for column in profile_columns %}
-- the latest {{ column }} a form gave
latest_{{ column }} as (
    select email, {{ column }}
    from (
        select
            email,
            {{ column }},
            row_number() over (partition by email order by submitted_at desc, submission_id desc) as recency
        from forms
        where {{ column }} is not null
    ) as ranked
    where recency = 1
),
{% endfor %}

-- Calendly and Stripe give one full name: the latest one, split at its first space, fills what neither the
-- forms nor the CRM have
full_names as (
    select email, full_name
    from (
        select
            email,
            full_name,
            row_number() over (partition by email order by named_at desc, record_id desc) as recency
        from (
            select email, trim(customer_name) as full_name, purchased_at as named_at, session_id as record_id
            from purchases
            union all
            select email, trim(invitee_name), occurred_at, event_key
            from {{ ref('int_calendly__invitee_events') }}
            where is_valid_email
        ) as named
        where full_name is not null and full_name <> ''
    ) as ranked
    where recency = 1
),

split_names as (
    select
        email,
        {{ dbt.split_part('full_name', "' '", 1) }} as first_name,
        nullif(trim({{ dbt.right('full_name', dbt.length('full_name') ~ ' - ' ~ dbt.length(dbt.split_part('full_name', "' '", 1))) }}), '')
            as last_name
    from full_names
),

-- the form that captured the lead: the contact's first submission
first_forms as (
    select email, form_id
    from (
        select
            email,
            form_id,
            row_number() over (partition by email order by submitted_at, submission_id) as submission_number
        from forms
    ) as ranked
    where submission_number = 1
),

-- Segment and audience: forms tag them from the organization type, purchases tag B2C and the product's
-- audience (docs/contacts-and-touches.md#segment-and-audience, docs/purchases.md#purchase-tagging). The latest tag with a known audience wins; 'Other' only when no tag
-- has one (a newsletter signup names no organization type and does not undo an earlier B2B tag).
tags as (
    select email, segment, coalesce(primary_audience, 'Other') as primary_audience,
        submitted_at as tagged_at, submission_id as tag_id
    from forms
    union all
    select email, 'B2C' as segment, coalesce(primary_audience, 'Other') as primary_audience,
        purchased_at as tagged_at, session_id as tag_id
    from purchases
),

segments as (
    select email, segment, primary_audience
    from (
        select
            *,
            row_number() over (
                partition by email
                order by case when primary_audience = 'Other' then 1 else 0 end, tagged_at desc, tag_id desc
            ) as tag_rank
        from tags
    ) as ranked
    where tag_rank = 1
),

suppressions as (
    select email, min(suppressed_at) as marketing_suppressed_at
    from {{ ref('int_marketing_suppressions') }}
    group by email
),

-- docs/contacts-and-touches.md#attribution-is-never-overwritten: an original touch the CRM already holds is kept. It is ours when each of its fields is
-- empty or equal to ours (the one this pipeline wrote, read back at millisecond precision): then writing
-- ours only fills empty fields, and the row stays stable once HubSpot reads it back.
original_touch_origins as (
    select
        contacts.email,
        case
            when (crm.original_touch_source is not null
                    or crm.original_touch_campaign is not null
                    or crm.original_touch_at is not null)
                and not coalesce(
                    coalesce(crm.original_touch_source, attribution.original_touch_source, '')
                        = coalesce(attribution.original_touch_source, '')
                    and coalesce(crm.original_touch_campaign, attribution.original_touch_campaign, '')
                        = coalesce(attribution.original_touch_campaign, '')
                    and (crm.original_touch_at is null
                        or {{ dbt.datediff('crm.original_touch_at', 'attribution.original_touch_at', 'millisecond') }} = 0),
                    false)
                then 'crm'
            when attribution.email is not null then 'touches'
        end as original_touch_origin
    from contacts
    left join crm on contacts.email = crm.email
    left join attribution on contacts.email = attribution.email
)

select
    contacts.email,
    coalesce(latest_first_name.first_name, crm.first_name, split_names.first_name) as first_name,
    coalesce(latest_last_name.last_name, crm.last_name, split_names.last_name) as last_name,
    coalesce(latest_organization.organization, crm.company) as company,
    coalesce(latest_phone.phone, crm.phone) as phone,
    segments.segment,
    coalesce(segments.primary_audience, 'Other') as primary_audience,
    first_forms.form_id as form_source,
    origins.original_touch_origin,
    case origins.original_touch_origin
        when 'crm' then crm.original_touch_source else attribution.original_touch_source
    end as original_touch_source,
    case when origins.original_touch_origin = 'touches' then attribution.original_touch_medium end
        as original_touch_medium,
    case origins.original_touch_origin
        when 'crm' then crm.original_touch_campaign else attribution.original_touch_campaign
    end as original_touch_campaign,
    case origins.original_touch_origin
        when 'crm' then crm.original_touch_at else attribution.original_touch_at
    end as original_touch_at,
    attribution.latest_touch_source,
    attribution.latest_touch_medium,
    attribution.latest_touch_campaign,
    attribution.latest_touch_at,
    coalesce(attribution.touch_count, 0) as touch_count,
    coalesce(crm.is_customer, false) as is_client,
    crm.contact_id as crm_contact_id,
    crm.owner_id as crm_owner_id,
    demos.demo_status,
    demos.event_name as demo_event_name,
    demos.start_at as demo_start_at,
    demos.end_at as demo_end_at,
    demos.booked_at as demo_first_booked_at,
    demos.is_rescheduled as is_demo_rescheduled,
    webinars.webinar_history,
    coalesce(tiers.engagement_tier, 'new') as engagement_tier,
    tiers.tier_since as engagement_tier_since,
    customer_status.customer_status,
    customer_status.churned_at,
    suppressions.email is not null as is_marketing_suppressed,
    suppressions.marketing_suppressed_at
from contacts
inner join original_touch_origins as origins on contacts.email = origins.email
left join crm on contacts.email = crm.email
left join attribution on contacts.email = attribution.email
{%- for column in profile_columns %}
left join latest_{{ column }} on contacts.email = latest_{{ column }}.email
{%- endfor %}
left join split_names on contacts.email = split_names.email
left join first_forms on contacts.email = first_forms.email
left join segments on contacts.email = segments.email
left join demos on contacts.email = demos.email
left join {{ ref('int_webinar_history') }} as webinars on contacts.email = webinars.email
left join {{ ref('fct_engagement_tiers') }} as tiers on contacts.email = tiers.email
left join customer_status on contacts.email = customer_status.email
left join suppressions on contacts.email = suppressions.email
