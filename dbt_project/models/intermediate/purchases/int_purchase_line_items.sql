-- The line items of each paid checkout session up to as_of (docs/purchases.md#purchase-tagging: the webhook carries none, the
-- Checkout Sessions API lists them), with the product's name and audience from the products seed.
select
    line_items.session_id,
    line_items.line_item_id,
    purchases.email,
    purchases.purchased_at,
    line_items.product_id,
    coalesce(products.product_name, line_items.description, line_items.product_id) as product_name,
    coalesce(products.primary_audience, 'Other') as primary_audience,
    line_items.quantity,
    line_items.amount_total,
    line_items.currency,
    purchases.is_refunded
from {{ ref('stg_stripe__checkout_line_items') }} as line_items
inner join {{ ref('int_purchases') }} as purchases on line_items.session_id = purchases.session_id
left join {{ ref('products') }} as products on line_items.product_id = products.product_id
