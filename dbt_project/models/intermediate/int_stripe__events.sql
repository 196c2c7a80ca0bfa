-- Stripe events up to as_of, one row per event id: webhook deliveries and the Events API copy
-- deduplicated (docs/sources.md). A table: the JSON extraction of staging runs once per build, not per reader.
{{ config(materialized='table') }}
{%- set columns = [
    'event_id', 'event_type', 'api_version', 'is_livemode', 'occurred_at',
    'object_type', 'object_id', 'customer_id', 'email_raw', 'email', 'is_valid_email', 'customer_name',
    'session_id', 'checkout_mode', 'object_status', 'payment_status', 'amount', 'amount_paid',
    'amount_refunded', 'currency', 'payment_intent_id', 'client_reference_id',
    'utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term',
    'billing_reason', 'subscription_id', 'product_id', 'period_start_at', 'period_end_at',
    'canceled_at', 'cancellation_reason',
] %}

with copies as (
    select {{ columns | join(', ') }}, received_at, 'webhook' as seen_via, 1 as seen_via_rank
    from {{ ref('stg_stripe__webhook_events') }}
    union all
    select {{ columns | join(', ') }}, cast(null as {{ dbt.type_timestamp() }}) as received_at, 'api' as seen_via, 2 as seen_via_rank
    from {{ ref('stg_stripe__events') }}
),

ranked as (
    select
        *,
        row_number() over (partition by event_id order by seen_via_rank, received_at) as copy_number
    from copies
)

select
    {{ columns | join(', ') }},
    seen_via as first_seen_via
from ranked
where copy_number = 1
    and occurred_at <= {{ as_of() }}
