-- Each contact's webinar history up to as_of (docs/webinars.md#webinar-history): the known codes they registered for, once
-- each, in first-registration order (not in webinar order): 'WB003, WB005'.
select
    email,
    {{ dbt.listagg('webinar_code', "', '", 'order by registered_at, webinar_code') }} as webinar_history,
    count(*) as webinar_count,
    max(registered_at) as last_registered_at
from {{ ref('int_webinar_registrations_deduplicated') }}
group by email
