-- Every event that sets a customer's status up to as_of (docs/churn.md#customer-status), one row per event:
--   active  / purchase             a paid checkout session, or a subscription's first paid invoice
--   active  / renewed              invoice.paid with billing_reason subscription_cycle (a renewal)
--   churned / subscription_deleted customer.subscription.deleted
--   churned / renewal_unpaid       a renewal invoice still unpaid 14 days after its period end (the
--                                  renewal attempt): dated at that deadline, so it only appears once the
--                                  deadline is at or before as_of
-- `is_transition` marks the rows where the status differs from the contact's previous one.
with events as (
    select * from {{ ref('int_stripe__events') }}
),

-- Stripe names the customer by id on subscriptions; invoices, sessions and charges carry the email
customer_emails as (
    select
        customer_id,
        email,
        row_number() over (partition by customer_id order by occurred_at desc) as recency
    from events
    where customer_id is not null
        and is_valid_email
),

subscription_events as (
    select
        events.*,
        coalesce(
            case when events.is_valid_email then events.email end,
            customer_emails.email
        ) as contact_email
    from events
    left join customer_emails
        on events.customer_id = customer_emails.customer_id and customer_emails.recency = 1
    where events.event_type in ('invoice.paid', 'invoice.payment_failed', 'customer.subscription.deleted')
        or (events.object_type = 'invoice' and events.billing_reason = 'subscription_cycle')
),

paid_invoices as (
    select object_id as invoice_id, subscription_id, occurred_at
    from subscription_events
    where event_type = 'invoice.paid'
),

deletions as (
    select subscription_id, min(occurred_at) as deleted_at
    from subscription_events
    where event_type = 'customer.subscription.deleted'
    group by subscription_id
),

-- renewal invoices Stripe reported without payment (e.g. invoice.payment_failed); the 14 days run from
-- the invoice's period end, which for a renewal is the moment it was attempted
unpaid_renewals as (
    select
        object_id as invoice_id,
        max(contact_email) as email,
        max(subscription_id) as subscription_id,
        {{ dbt.dateadd('day', 14, 'min(coalesce(period_end_at, occurred_at))') }} as deadline_at
    from subscription_events
    where object_type = 'invoice'
        and billing_reason = 'subscription_cycle'
        and event_type <> 'invoice.paid'
    group by object_id
),

changes as (
    select
        email,
        'active' as status,
        purchased_at as changed_at,
        'purchase' as reason,
        cast(null as {{ dbt.type_string() }}) as subscription_id,
        session_id as source_id
    from {{ ref('int_purchases') }}

    union all
    select
        contact_email,
        'active',
        occurred_at,
        case when billing_reason = 'subscription_cycle' then 'renewed' else 'purchase' end,
        subscription_id,
        object_id
    from subscription_events
    where event_type = 'invoice.paid'
        and billing_reason in ('subscription_create', 'subscription_cycle')

    union all
    select
        contact_email, 'churned', occurred_at, 'subscription_deleted', subscription_id,
        subscription_id as source_id
    from subscription_events
    where event_type = 'customer.subscription.deleted'

    union all
    select unpaid.email, 'churned', unpaid.deadline_at, 'renewal_unpaid', unpaid.subscription_id, unpaid.invoice_id
    from unpaid_renewals as unpaid
    where unpaid.deadline_at <= {{ as_of() }}
        -- paid by the deadline (late, or by a later renewal of the same subscription): no churn
        and not exists (
            select 1 from paid_invoices as paid
            where (paid.invoice_id = unpaid.invoice_id or paid.subscription_id = unpaid.subscription_id)
                and paid.occurred_at > {{ dbt.dateadd('day', -14, 'unpaid.deadline_at') }}
                and paid.occurred_at <= unpaid.deadline_at
        )
        -- deleted by then: that deletion is the churn
        and not exists (
            select 1 from deletions
            where deletions.subscription_id = unpaid.subscription_id
                and deletions.deleted_at <= unpaid.deadline_at
        )
),

ordered as (
    select
        *,
        lag(status) over (
            partition by email
            order by changed_at, case when status = 'churned' then 0 else 1 end, reason, source_id
        ) as previous_status
    from changes
    where email is not null
)

select
    email,
    status,
    changed_at,
    reason,
    subscription_id,
    source_id,
    previous_status,
    previous_status is null or previous_status <> status as is_transition
from ordered
