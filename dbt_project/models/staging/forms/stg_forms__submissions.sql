-- One row per web form submission: renamed, cast and flagged; nothing filtered, nothing joined.
with source as (
    select * from {{ source_or_empty('raw_forms', 'submissions') }}
)

select
    id as submission_id,
    form_id,
    origin,
    email as email_raw,
    {{ normalize_email('email') }} as email,
    {{ is_valid_email(normalize_email('email')) }} as is_valid_email,
    nullif(trim(first_name), '') as first_name,
    nullif(trim(last_name), '') as last_name,
    nullif(trim(organization), '') as organization,
    org_type as org_type_raw,
    nullif(trim(org_type), '') as org_type,
    nullif(trim(phone), '') as phone,
    upper(nullif(trim(webinar_code), '')) as webinar_code,
    nullif(trim(utm_source), '') as utm_source,
    nullif(trim(utm_medium), '') as utm_medium,
    nullif(trim(utm_campaign), '') as utm_campaign,
    nullif(trim(utm_content), '') as utm_content,
    nullif(trim(utm_term), '') as utm_term,
    nullif(trim(referrer), '') as referrer,
    page_url,
    consent,
    {{ utc_timestamp('coalesce(submitted_at, received_at)') }} as occurred_at,
    {{ utc_timestamp('received_at') }} as received_at,
    landing_file,
    landing_line
from source
