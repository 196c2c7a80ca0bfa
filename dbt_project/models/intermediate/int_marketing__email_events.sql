-- Brevo email events up to as_of.
select *
from {{ ref('stg_marketing__email_events') }}
where occurred_at <= {{ as_of() }}
