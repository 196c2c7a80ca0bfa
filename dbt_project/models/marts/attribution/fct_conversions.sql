-- Every conversion up to as_of, one row each: the moments a contact moved forward, which attribution
-- credits to the touches before them (fct_attribution_credits).
--   lead_created    the contact's first touch (form, booking or purchase)
--   demo_booked     a demo booking (a reschedule moves a demo: it is not a new one)
--   demo_completed  a booking whose end time passed without a cancellation or reschedule
--   purchase        a paid checkout; its value is the net revenue in the purchase's currency
--   first_purchase  the contact's first paid checkout
--   became_client   when the contact first became an active customer (a purchase or a subscription's
--                   first paid invoice); a client only the CRM marks has no time, so no conversion
-- `value` is 1 except for purchases, so a credit's value_credit counts conversions or revenue alike.
with touches as (
    select * from {{ ref('fct_touches') }}
),

bookings as (
    select * from {{ ref('fct_demo_bookings') }}
),

purchases as (
    select * from {{ ref('fct_purchases') }}
),

conversions as (
    select
        {{ dbt.concat(["'lead_created:'", 'email']) }} as conversion_id,
        email,
        'lead_created' as conversion_type,
        occurred_at as converted_at,
        touch_id as source_record_id,
        cast(1 as {{ dbt.type_numeric() }}) as value,
        cast(null as {{ dbt.type_string() }}) as currency
    from touches
    where is_original_touch

    union all
    select
        {{ dbt.concat(["'demo_booked:'", 'invitee_uri']) }},
        email,
        'demo_booked',
        booked_at,
        invitee_uri,
        1,
        null
    from bookings
    where not is_reschedule
        and booked_at is not null

    union all
    select
        {{ dbt.concat(["'demo_completed:'", 'invitee_uri']) }},
        email,
        'demo_completed',
        end_at,
        invitee_uri,
        1,
        null
    from bookings
    where booking_status = 'completed'

    union all
    select
        {{ dbt.concat(["'purchase:'", 'session_id']) }},
        email,
        'purchase',
        purchased_at,
        session_id,
        net_amount,
        currency
    from purchases

    union all
    select
        {{ dbt.concat(["'first_purchase:'", 'email']) }},
        email,
        'first_purchase',
        purchased_at,
        session_id,
        1,
        null
    from purchases
    where is_first_purchase

    union all
    select
        {{ dbt.concat(["'became_client:'", 'email']) }},
        email,
        'became_client',
        customer_since,
        email as source_record_id,
        1,
        null
    from {{ ref('fct_customer_status') }}
    where customer_since is not null
)

select
    conversion_id,
    email,
    conversion_type,
    converted_at,
    cast({{ dbt.date_trunc('month', 'converted_at') }} as date) as conversion_month,
    source_record_id,
    value,
    currency
from conversions
