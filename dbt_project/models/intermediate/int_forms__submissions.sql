-- Form submissions up to as_of, tagged from the seeds: segment and primary audience from the
-- organization type (docs/contacts-and-touches.md#segment-and-audience), known form and webinar, and the touch source (docs/contacts-and-touches.md#touch-source: UTM
-- parameters if present, else the referrer, else direct).
with submissions as (
    select * from {{ ref('stg_forms__submissions') }}
    where occurred_at <= {{ as_of() }}
),

org_types as (
    select lower(trim(org_type)) as org_type_key, segment, primary_audience
    from {{ ref('org_types') }}
),

forms as (
    select form_id from {{ ref('forms') }}
),

webinars as (
    select webinar_code from {{ ref('webinars') }}
),

referrer_sources as (
    select referrer_domain, source, medium from {{ ref('referrer_sources') }}
),

with_referrer_domain as (
    select
        *,
        {#- the host of the referrer URL, lower-cased, without a leading "www." -#}
        nullif({{ dbt.replace(
            "lower(case when referrer like '%://%' then " ~ dbt.split_part('referrer', "'/'", 3)
            ~ " else " ~ dbt.split_part('referrer', "'/'", 1) ~ " end)",
            "'www.'", "''") }}, '') as referrer_domain
    from submissions
)

select
    s.submission_id,
    s.form_id,
    forms.form_id is not null as is_known_form,
    s.origin,
    s.email,
    s.email_raw,
    s.is_valid_email,
    s.first_name,
    s.last_name,
    s.organization,
    s.phone,
    s.org_type,
    case
        when s.org_type is null then 'missing'
        when org_types.org_type_key is null then 'unknown'
        else 'known'
    end as org_type_status,
    org_types.segment,
    coalesce(org_types.primary_audience, 'Other') as primary_audience,
    s.webinar_code,
    webinars.webinar_code is not null as is_known_webinar,
    s.consent,
    s.utm_source,
    s.utm_medium,
    s.utm_campaign,
    s.utm_content,
    s.utm_term,
    s.referrer,
    s.referrer_domain,
    case
        when s.utm_source is not null then s.utm_source
        when s.referrer_domain is not null then coalesce(referrer_sources.source, s.referrer_domain)
        else 'direct'
    end as touch_source,
    case
        when s.utm_source is not null then s.utm_medium
        when s.referrer_domain is not null then coalesce(referrer_sources.medium, 'referral')
    end as touch_medium,
    case when s.utm_source is not null then s.utm_campaign end as touch_campaign,
    s.page_url,
    s.occurred_at,
    s.received_at
from with_referrer_domain as s
left join forms on s.form_id = forms.form_id
left join org_types on lower(s.org_type) = org_types.org_type_key
left join webinars on s.webinar_code = webinars.webinar_code
left join referrer_sources on s.referrer_domain = referrer_sources.referrer_domain
