-- Webinar registrations for analysts, as of as_of: one row per contact and known webinar, with the
-- catalogue's details, the registration's place in the contact's history and where the webinar stands.
select
    email,
    webinar_code,
    webinar_title,
    registered_at,
    last_registered_at,
    registration_count,
    row_number() over (partition by email order by registered_at, webinar_code) as history_position,
    segment,
    primary_audience,
    starts_at,
    ends_at,
    time_zone,
    case
        when starts_at > {{ as_of() }} then 'upcoming'
        when ends_at > {{ as_of() }} then 'live'
        else 'ended'
    end as webinar_status
from {{ ref('int_webinar_registrations_deduplicated') }}
