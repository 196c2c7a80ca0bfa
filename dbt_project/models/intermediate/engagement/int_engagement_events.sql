-- Email engagement up to as_of (docs/engagement.md#tier-rules): opens and clicks the marketing platform reported, for
-- valid emails (int_marketing__email_events filters the time), on our lifecycle emails and on newsletters
-- alike (email_kind). Apple's proxy loads are not opens.
select
    event_key,
    email_kind,
    email,
    occurred_at as engaged_at,
    case when is_click then 'click' else 'open' end as kind,
    message_id,
    template_id,
    campaign_id,
    link
from {{ ref('int_marketing__email_events') }}
where (is_open or is_click)
    and {{ is_valid_email('email') }}
