-- Paid checkout sessions up to as_of (docs/purchases.md#purchase-tagging), one row per session, with their products and refunds.
--
-- A session is paid when a checkout.session.completed (or .async_payment_succeeded) event says so, or
-- the Checkout Sessions API lists it complete and paid: the pipeline is complete from REST alone, and a
-- session seen both ways is one row (int_stripe__events already made webhook and Events API copies of
-- an event one row). The event's copy wins: it carries the completion time.
with events as (
    select * from {{ ref('int_stripe__events') }}
),

session_copies as (
    select
        session_id,
        email,
        is_valid_email,
        customer_id,
        customer_name,
        occurred_at as purchased_at,
        amount as amount_total,
        currency,
        payment_intent_id,
        client_reference_id,
        checkout_mode,
        utm_source,
        utm_medium,
        utm_campaign,
        1 as copy_rank
    from events
    where event_type in ('checkout.session.completed', 'checkout.session.async_payment_succeeded')
        and payment_status = 'paid'
        and session_id is not null

    union all

    select
        session_id,
        email,
        is_valid_email,
        customer_id,
        customer_name,
        occurred_at as purchased_at,
        amount_total,
        currency,
        payment_intent_id,
        client_reference_id,
        checkout_mode,
        utm_source,
        utm_medium,
        utm_campaign,
        2 as copy_rank
    from {{ ref('stg_stripe__checkout_sessions') }}
    where session_status = 'complete'
        and payment_status = 'paid'
        and occurred_at <= {{ as_of() }}
),

sessions as (
    select
        *,
        row_number() over (partition by session_id order by copy_rank, purchased_at) as copy_number
    from session_copies
),

line_items as (
    select
        line_items.session_id,
        line_items.line_item_id,
        line_items.product_id,
        coalesce(products.product_name, line_items.description, line_items.product_id) as product_name,
        products.primary_audience,
        row_number() over (partition by line_items.session_id order by line_items.line_item_id) as line_number
    from {{ ref('stg_stripe__checkout_line_items') }} as line_items
    left join {{ ref('products') }} as products on line_items.product_id = products.product_id
),

session_products as (
    select
        session_id,
        {{ dbt.listagg('product_id', "', '", 'order by line_number') }} as product_ids,
        {{ dbt.listagg('product_name', "', '", 'order by line_number') }} as product_names,
        max(case when line_number = 1 then primary_audience end) as primary_audience
    from line_items
    group by session_id
),

-- charge.refunded names the payment intent; the charge's metadata may also name the session
refunds as (
    select
        sessions.session_id,
        min(events.occurred_at) as refunded_at,
        max(events.amount_refunded) as amount_refunded
    from sessions
    inner join events
        on events.event_type = 'charge.refunded'
        and (sessions.payment_intent_id = events.payment_intent_id or sessions.session_id = events.session_id)
    where sessions.copy_number = 1
    group by sessions.session_id
)

select
    sessions.email,
    sessions.session_id,
    sessions.purchased_at,
    sessions.amount_total,
    sessions.currency,
    session_products.product_ids,
    session_products.product_names,
    coalesce(session_products.primary_audience, 'Other') as primary_audience,
    refunds.session_id is not null as is_refunded,
    refunds.refunded_at,
    refunds.amount_refunded,
    sessions.utm_source,
    sessions.utm_medium,
    sessions.utm_campaign,
    sessions.client_reference_id,
    sessions.checkout_mode,
    sessions.customer_id,
    sessions.customer_name,
    sessions.payment_intent_id
from sessions
left join session_products on sessions.session_id = session_products.session_id
left join refunds on sessions.session_id = refunds.session_id
where sessions.copy_number = 1
    and sessions.is_valid_email
