-- One row per Brevo email event, with flags for the kinds the lifecycle logic reads.
with source as (
    select * from {{ source_or_empty('raw_marketing', 'email_events') }}
)

select
    event_key,
    event as event_name,
    email as email_raw,
    {{ normalize_email('email') }} as email,
    message_id,
    template_id,
    tag,
    subject,
    link,
    reason,
    event = 'opened' as is_open,
    event = 'clicks' as is_click,
    event = 'hardBounces' as is_hard_bounce,
    event = 'unsubscribed' as is_unsubscribe,
    event = 'spam' as is_spam_complaint,
    {{ utc_timestamp('date') }} as occurred_at
from source
