-- One row per checkout session from the API (line items are in stg_stripe__checkout_line_items).
with source as (
    select * from {{ source_or_empty('raw_stripe', 'checkout_sessions') }}
)

select
    id as session_id,
    mode as checkout_mode,
    status as session_status,
    payment_status,
    customer as customer_id,
    coalesce(customer_details__email, customer_email) as email_raw,
    {{ normalize_email('coalesce(customer_details__email, customer_email)') }} as email,
    {{ is_valid_email(normalize_email('coalesce(customer_details__email, customer_email)')) }} as is_valid_email,
    customer_details__name as customer_name,
    customer_details__phone as phone,
    client_reference_id,
    amount_subtotal,
    amount_total,
    currency,
    payment_intent as payment_intent_id,
    subscription as subscription_id,
    invoice as invoice_id,
    metadata__utm_source as utm_source,
    metadata__utm_medium as utm_medium,
    metadata__utm_campaign as utm_campaign,
    livemode as is_livemode,
    {{ epoch_seconds_to_timestamp('created') }} as created_at,
    {{ epoch_seconds_to_timestamp('created') }} as occurred_at
from source
