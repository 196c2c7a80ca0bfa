-- The lifecycle funnel lead -> demo booked -> demo completed -> customer, per lead month (cohort), primary
-- audience, segment and original touch source: how many contacts reached each stage (ever, up to as_of),
-- the rates between stages, and the median days between them. A contact is a lead from its first touch
-- (else its first conversion); a customer from becoming an active customer, or when the CRM marks it a
-- client (then without a date, so it is left out of the medians).
with contacts as (
    select email, primary_audience, segment, original_touch_source, is_client
    from {{ ref('dim_contacts') }}
),

stages as (
    select
        email,
        min(case when conversion_type = 'lead_created' then converted_at end) as lead_at,
        min(case when conversion_type = 'demo_booked' then converted_at end) as demo_booked_at,
        min(case when conversion_type = 'demo_completed' then converted_at end) as demo_completed_at,
        min(case when conversion_type = 'became_client' then converted_at end) as customer_at,
        min(converted_at) as first_converted_at
    from {{ ref('fct_conversions') }}
    group by email
),

contact_stages as (
    select
        cast({{ dbt.date_trunc('month', 'coalesce(stages.lead_at, stages.first_converted_at)') }} as date)
            as cohort_month,
        contacts.primary_audience,
        contacts.segment,
        coalesce(contacts.original_touch_source, 'direct') as original_touch_source,
        stages.demo_booked_at is not null as has_booked_demo,
        stages.demo_completed_at is not null as has_completed_demo,
        stages.customer_at is not null or contacts.is_client as is_customer,
        {{ dbt.datediff('stages.lead_at', 'stages.demo_booked_at', 'second') }} / 86400.0 as days_lead_to_demo,
        {{ dbt.datediff('stages.demo_booked_at', 'stages.demo_completed_at', 'second') }} / 86400.0
            as days_demo_to_completed,
        {{ dbt.datediff('stages.lead_at', 'stages.customer_at', 'second') }} / 86400.0 as days_lead_to_customer
    from contacts
    inner join stages on contacts.email = stages.email
),

counted as (
    select
        cohort_month,
        primary_audience,
        segment,
        original_touch_source,
        count(*) as leads,
        sum(case when has_booked_demo then 1 else 0 end) as demos_booked,
        sum(case when has_completed_demo then 1 else 0 end) as demos_completed,
        sum(case when is_customer then 1 else 0 end) as customers,
        percentile_cont(0.5) within group (order by days_lead_to_demo) as median_days_lead_to_demo,
        percentile_cont(0.5) within group (order by days_demo_to_completed) as median_days_demo_to_completed,
        percentile_cont(0.5) within group (order by days_lead_to_customer) as median_days_lead_to_customer
    from contact_stages
    group by cohort_month, primary_audience, segment, original_touch_source
)

select
    cohort_month,
    primary_audience,
    segment,
    original_touch_source,
    leads,
    demos_booked,
    demos_completed,
    customers,
    cast(demos_booked as {{ type_double() }}) / leads as lead_to_demo_rate,
    case when demos_booked > 0 then cast(demos_completed as {{ type_double() }}) / demos_booked end
        as demo_to_completed_rate,
    cast(customers as {{ type_double() }}) / leads as lead_to_customer_rate,
    median_days_lead_to_demo,
    median_days_demo_to_completed,
    median_days_lead_to_customer
from counted
