-- One row per form submission with a valid email, up to as_of (int_forms__submissions filters the time),
-- tagged with its segment and primary audience (docs/contacts-and-touches.md#segment-and-audience). Invalid emails never reach a contact-level
-- model: they stay in int_forms__submissions and are listed in dq_flagged_records.
select
    submission_id,
    email,
    form_id,
    occurred_at as submitted_at,
    first_name,
    last_name,
    organization,
    org_type,
    phone,
    webinar_code,
    is_known_webinar,
    consent,
    utm_source,
    utm_medium,
    utm_campaign,
    utm_content,
    utm_term,
    referrer,
    page_url,
    -- the org_types seed decides; without a mapping, naming an organization (or an organization type)
    -- makes it a B2B submission, and a person who names neither is B2C
    coalesce(
        segment,
        case when organization is not null or org_type is not null then 'B2B' else 'B2C' end
    ) as segment,
    segment is not null as is_segment_from_org_type,
    primary_audience,
    org_type_status = 'unknown' as is_unknown_org_type,
    org_type_status
from {{ ref('int_forms__submissions') }}
where is_valid_email
