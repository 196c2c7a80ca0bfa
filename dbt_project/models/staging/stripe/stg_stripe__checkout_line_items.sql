-- One row per line item of a checkout session.
with source as (
    select * from {{ source_or_empty('raw_stripe', 'checkout_line_items') }}
)

select
    session_id,
    id as line_item_id,
    price__product as product_id,
    price__id as price_id,
    description,
    quantity,
    price__unit_amount as unit_amount,
    amount_subtotal,
    amount_discount,
    amount_tax,
    amount_total,
    currency
from source
