-- Desired list memberships in the marketing platform (docs/sync-engine.md#desired-state, docs/field-names.md), one row per contact and list:
-- the activations add the new rows and remove the members who are no longer here.
--   Webinar <code>  registered for the webinar (docs/webinars.md#webinar-lists)
--   <list_name>     an active instance of a sequence whose list_name is set in seeds/sequences.csv
--                   (Demo nurture, Re-engagement, docs/engagement.md#re-engagement)
--   Churned         customer status churned (docs/churn.md#churn)
--   B2C customers   a paid, unrefunded purchase and not churned
with memberships as (
    select email, {{ dbt.concat(["'Webinar '", 'webinar_code']) }} as list_name
    from {{ ref('fct_webinar_registrations') }}

    union all
    select email, list_name
    from {{ ref('fct_sequence_enrollments') }}
    where status = 'active' and list_name is not null

    union all
    select email, 'Churned'
    from {{ ref('fct_customer_status') }}
    where customer_status = 'churned'

    union all
    select purchases.email, 'B2C customers'
    from {{ ref('fct_purchases') }} as purchases
    where not purchases.is_refunded
        and not exists (
            select 1 from {{ ref('fct_customer_status') }} as statuses
            where statuses.email = purchases.email and statuses.customer_status = 'churned'
        )
)

select distinct
    email,
    cast(list_name as {{ dbt.type_string() }}) as list_name
from memberships
where {{ is_valid_email('email') }}
