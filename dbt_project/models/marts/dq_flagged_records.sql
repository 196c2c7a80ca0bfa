-- Data quality: one row per problem found in a record (docs/sources.md: bad records are kept and flagged
-- downstream, never silently dropped). Events count up to as_of; contacts (CRM, marketing platform) as
-- they are now; rejected landing lines whenever they were landed.
with submissions as (
    select * from {{ ref('int_forms__submissions') }}
),

calendly as (
    select * from {{ ref('int_calendly__invitee_events') }}
),

stripe as (
    select * from {{ ref('int_stripe__events') }}
),

products as (
    select product_id from {{ ref('products') }}
),

sessions as (
    select session_id, occurred_at from {{ ref('stg_stripe__checkout_sessions') }}
    where occurred_at <= {{ as_of() }}
),

line_items as (
    select
        line_items.session_id,
        line_items.line_item_id,
        line_items.product_id,
        sessions.occurred_at
    from {{ ref('stg_stripe__checkout_line_items') }} as line_items
    inner join sessions on line_items.session_id = sessions.session_id
),

problems as (
    select
        'forms' as source, 'submission' as record_type, submission_id as record_id, email_raw,
        'invalid_email' as reason, email_raw as detail, occurred_at
    from submissions
    where not is_valid_email

    union all
    select
        'forms', 'submission', submission_id, email_raw,
        'unknown_org_type', org_type, occurred_at
    from submissions
    where org_type_status = 'unknown'

    union all
    select
        'forms', 'submission', submission_id, email_raw,
        'unknown_webinar_code', webinar_code, occurred_at
    from submissions
    where (form_id = 'webinar' or webinar_code is not null) and not is_known_webinar

    union all
    select
        'forms', 'submission', submission_id, email_raw,
        'unknown_form_id', form_id, occurred_at
    from submissions
    where not is_known_form

    -- an invitee's email is the same on each of its events: one row per invitee
    union all
    select
        'calendly', 'invitee', invitee_uri, email_raw,
        'invalid_email', email_raw as detail, min(occurred_at)
    from calendly
    where not is_valid_email
    group by invitee_uri, email_raw

    union all
    select
        'stripe', object_type, object_id, email_raw,
        'invalid_email', email_raw as detail, min(occurred_at)
    from stripe
    where email_raw is not null and not is_valid_email
    group by object_type, object_id, email_raw

    union all
    select
        'stripe', stripe.object_type, stripe.object_id, stripe.email_raw,
        'unknown_product', stripe.product_id, min(stripe.occurred_at)
    from stripe
    left join products on stripe.product_id = products.product_id
    where stripe.product_id is not null and products.product_id is null
    group by stripe.object_type, stripe.object_id, stripe.email_raw, stripe.product_id

    union all
    select
        'stripe', 'checkout_line_item',
        {{ dbt.concat(['line_items.session_id', "'/'", 'line_items.line_item_id']) }},
        cast(null as {{ dbt.type_string() }}),
        'unknown_product', line_items.product_id, line_items.occurred_at
    from line_items
    left join products on line_items.product_id = products.product_id
    where products.product_id is null

    union all
    select
        'crm', 'contact', contact_id, email_raw,
        'invalid_email', email_raw as detail, cast(null as {{ dbt.type_timestamp() }})
    from {{ ref('stg_crm__contacts') }}
    where not is_valid_email

    union all
    select
        'marketing', 'contact', {{ dbt.cast('contact_id', dbt.type_string()) }}, email_raw,
        'invalid_email', email_raw as detail, cast(null as {{ dbt.type_timestamp() }})
    from {{ ref('stg_marketing__contacts') }}
    where not is_valid_email

    union all
    {{ rejected_landing_lines('raw_forms', 'forms') }}

    union all
    {{ rejected_landing_lines('raw_calendly', 'calendly') }}

    union all
    {{ rejected_landing_lines('raw_stripe', 'stripe') }}

    union all
    {{ rejected_landing_lines('raw_marketing', 'marketing') }}
)

select
    cast(source as {{ dbt.type_string() }}) as source,
    cast(record_type as {{ dbt.type_string() }}) as record_type,
    cast(record_id as {{ dbt.type_string() }}) as record_id,
    cast(email_raw as {{ dbt.type_string() }}) as email_raw,
    cast(reason as {{ dbt.type_string() }}) as reason,
    cast(detail as {{ dbt.type_string() }}) as detail,
    occurred_at
from problems
