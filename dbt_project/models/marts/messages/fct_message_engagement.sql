-- One row per lifecycle email sent, with whether and when its recipient opened and clicked it: the
-- provider's open and click events up to as_of (int_engagement_events) matched to the email by the
-- provider's message id, which the send ledger keeps. A click counts as an open too (the open pixel is often
-- blocked while the link is followed).
with sent as (
    select message_key, sequence, step, email, sent_at
    from {{ ref('fct_messages') }}
    where status = 'sent'
),

-- every provider message id a sent key went out under (an email sent again after a lost answer has two)
provider_ids as (
    select distinct message_key, provider_message_id
    from {{ source_or_empty('activations', 'send_ledger') }}
    where status = 'sent' and provider_message_id is not null
),

engagement as (
    select
        provider_ids.message_key,
        min(events.engaged_at) as first_opened_at,
        min(case when events.kind = 'click' then events.engaged_at end) as first_clicked_at,
        sum(case when events.kind = 'open' then 1 else 0 end) as opens,
        sum(case when events.kind = 'click' then 1 else 0 end) as clicks
    from provider_ids
    inner join {{ ref('int_engagement_events') }} as events
        on provider_ids.provider_message_id = events.message_id
    group by provider_ids.message_key
)

select
    sent.message_key,
    sent.sequence,
    sent.step,
    sent.email,
    sent.sent_at,
    engagement.first_opened_at,
    engagement.first_clicked_at,
    engagement.first_opened_at is not null as is_opened,
    engagement.first_clicked_at is not null as is_clicked,
    coalesce(engagement.opens, 0) as opens,
    coalesce(engagement.clicks, 0) as clicks
from sent
left join engagement on sent.message_key = engagement.message_key
