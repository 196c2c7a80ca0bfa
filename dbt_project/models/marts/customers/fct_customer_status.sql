-- Each customer's status as of as_of (docs/churn.md#customer-status), one row per email that ever bought or subscribed:
-- the status of their latest status event, since when it holds, and their latest churn while churned.
with changes as (
    select
        *,
        -- the reverse of int_customer_status_changes' order (there, active wins a tie: it comes last)
        row_number() over (
            partition by email
            order by changed_at desc, case when status = 'churned' then 0 else 1 end desc, reason desc, source_id desc
        ) as recency
    from {{ ref('int_customer_status_changes') }}
),

-- the current status began with the latest transition into it
transitions as (
    select email, status, max(changed_at) as last_transition_at
    from changes
    where is_transition
    group by email, status
),

first_purchases as (
    select email, min(changed_at) as customer_since
    from changes
    where status = 'active'
    group by email
)

select
    latest.email,
    latest.status as customer_status,
    case when latest.status = 'churned' then transitions.last_transition_at end as churned_at,
    transitions.last_transition_at as status_changed_at,
    latest.reason as last_reason,
    latest.changed_at as last_event_at,
    first_purchases.customer_since
from changes as latest
inner join transitions on latest.email = transitions.email and latest.status = transitions.status
left join first_purchases on latest.email = first_purchases.email
where latest.recency = 1
