-- Webinar registrations up to as_of (docs/webinars.md#registration), one row per contact and known webinar: registering
-- again for the same webinar adds nothing (no second confirmation, no second history entry). Unknown
-- codes are left out here (dq_flagged_records lists them).
with submissions as (
    select * from {{ ref('int_form_submissions_tagged') }}
),

registrations as (
    select
        *,
        row_number() over (partition by email, webinar_code order by submitted_at, submission_id) as registration_number,
        count(*) over (partition by email, webinar_code) as registration_count,
        max(submitted_at) over (partition by email, webinar_code) as last_registered_at
    from submissions
    where form_id = 'webinar'
        and is_known_webinar
),

-- the contact's latest name and phone from any form, for a registration that did not ask for them
-- (the survey link is prefilled with the phone, docs/webinars.md#confirmation-and-links)
latest_first_names as (
    select
        email,
        first_name,
        row_number() over (partition by email order by submitted_at desc, submission_id desc) as recency
    from submissions
    where first_name is not null
),

latest_phones as (
    select
        email,
        phone,
        row_number() over (partition by email order by submitted_at desc, submission_id desc) as recency
    from submissions
    where phone is not null
),

webinars as (
    select
        webinar_code,
        title,
        starts_at,
        {{ dbt.dateadd('minute', 'duration_minutes', 'starts_at') }} as ends_at,
        time_zone,
        zoom_url,
        survey_base_url
    from {{ ref('webinars') }}
)

select
    registrations.email,
    registrations.webinar_code,
    registrations.submission_id,
    registrations.submitted_at as registered_at,
    registrations.last_registered_at,
    registrations.registration_count,
    coalesce(registrations.first_name, latest_first_names.first_name) as first_name,
    coalesce(registrations.phone, latest_phones.phone) as phone,
    registrations.segment,
    registrations.primary_audience,
    webinars.title as webinar_title,
    webinars.starts_at,
    webinars.ends_at,
    webinars.time_zone,
    webinars.zoom_url,
    webinars.survey_base_url
from registrations
inner join webinars on registrations.webinar_code = webinars.webinar_code
left join latest_first_names
    on registrations.email = latest_first_names.email and latest_first_names.recency = 1
left join latest_phones
    on registrations.email = latest_phones.email and latest_phones.recency = 1
where registrations.registration_number = 1
