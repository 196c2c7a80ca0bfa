-- Brevo email events up to as_of: the transactional ones (our own sends, from the event log) and the
-- campaign ones (newsletters, from the marketing webhook), told apart by email_kind.
with transactional as (
    select
        event_key,
        'transactional' as email_kind,
        event_name,
        email_raw,
        email,
        message_id,
        template_id,
        cast(null as {{ dbt.type_bigint() }}) as campaign_id,
        cast(null as {{ dbt.type_string() }}) as campaign_name,
        tag,
        subject,
        link,
        reason,
        is_open,
        is_click,
        is_hard_bounce,
        is_unsubscribe,
        is_spam_complaint,
        occurred_at
    from {{ ref('stg_marketing__email_events') }}
),

campaign as (
    select
        event_key,
        'campaign' as email_kind,
        event_name,
        email_raw,
        email,
        cast(null as {{ dbt.type_string() }}) as message_id,
        cast(null as {{ dbt.type_bigint() }}) as template_id,
        campaign_id,
        campaign_name,
        tag,
        cast(null as {{ dbt.type_string() }}) as subject,
        link,
        reason,
        is_open,
        is_click,
        is_hard_bounce,
        is_unsubscribe,
        is_spam_complaint,
        occurred_at
    from {{ ref('stg_marketing__campaign_events') }}
)

select * from (
    select * from transactional
    union all
    select * from campaign
) as events
where occurred_at <= {{ as_of() }}
