-- One row per Brevo campaign (newsletter) event from its marketing webhook, with the same flags as the
-- transactional events. Brevo sends the event names it subscribes under other spellings (click,
-- hard_bounce, unsubscribe).
with source as (
    select * from {{ source_or_empty('raw_marketing', 'campaign_events') }}
)

select
    event_key,
    event as event_name,
    email as email_raw,
    {{ normalize_email('email') }} as email,
    campaign_id,
    campaign_name,
    tag,
    url as link,
    reason,
    event = 'opened' as is_open,
    event = 'click' as is_click,
    event = 'hard_bounce' as is_hard_bounce,
    event = 'unsubscribe' as is_unsubscribe,
    event = 'spam' as is_spam_complaint,
    {{ utc_timestamp('occurred_at') }} as occurred_at,
    {{ utc_timestamp('sent_at') }} as campaign_sent_at
from source
