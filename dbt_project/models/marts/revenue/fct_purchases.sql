-- Every paid Stripe checkout up to as_of, one row per session, with its revenue in the purchase's own
-- currency (major units: dollars, not cents) and refunds netted. The revenue that attribution credits to
-- campaigns (fct_conversions, conversion_type 'purchase').
with purchases as (
    select * from {{ ref('int_purchases') }}
)

select
    session_id,
    email,
    purchased_at,
    lower(currency) as currency,
    {{ stripe_major_units('amount_total', 'currency') }} as amount,
    {{ stripe_major_units('coalesce(amount_refunded, 0)', 'currency') }} as amount_refunded,
    {{ stripe_major_units('amount_total - coalesce(amount_refunded, 0)', 'currency') }} as net_amount,
    is_refunded,
    refunded_at,
    product_ids,
    product_names,
    primary_audience,
    checkout_mode,
    row_number() over (partition by email order by purchased_at, session_id) = 1 as is_first_purchase,
    utm_source,
    utm_medium,
    utm_campaign
from purchases
