-- Desired state of the HubSpot contacts (docs/sync-engine.md#desired-state, docs/field-names.md): one row per contact, keyed by `email`, one
-- column per contact property, named as HubSpot names it. Every value is a string (HubSpot's API takes
-- strings only); null means "do not write this property" (an empty string would clear it, and nothing
-- here clears). Datetimes are epoch milliseconds, which HubSpot accepts for datetime properties.
--
-- Attribution is never overwritten (docs/contacts-and-touches.md#attribution-is-never-overwritten): original_touch_* only while the CRM holds no original
-- touch of its own (dim_contacts.original_touch_origin = 'touches'), the latest_touch_* always;
-- hubspot_owner_id, lifecyclestage and hs_analytics_source* are not columns at all.
{%- set epoch = "cast('1970-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")" %}
{%- set string = dbt.type_string() %}

with contacts as (
    select * from {{ ref('dim_contacts') }}
),

properties as (
    select
        email,
        first_name as firstname,
        last_name as lastname,
        company,
        phone,
        -- docs/demos.md#demo-bookings: scheduled while a demo is booked (a reschedule included), back to OPEN after a plain
        -- cancellation, otherwise left as the sales team set it
        case demo_status
            when 'booked' then 'DEMO_SCHEDULED'
            when 'canceled' then 'OPEN'
        end as hs_lead_status,
        segment as customer_segment,
        primary_audience,
        form_source,
        case when original_touch_origin = 'touches' then original_touch_source end as original_touch_source,
        case when original_touch_origin = 'touches' then original_touch_campaign end as original_touch_campaign,
        case when original_touch_origin = 'touches' then original_touch_at end as original_touch_at,
        latest_touch_source,
        latest_touch_campaign,
        latest_touch_at,
        webinar_history,
        -- the booked demo's start time: it moves with a reschedule (docs/demos.md#reschedule)
        demo_start_at as demo_booked_at,
        demo_event_name,
        customer_status,
        engagement_tier
    from contacts
)

select
    cast(email as {{ string }}) as email,
    cast(firstname as {{ string }}) as firstname,
    cast(lastname as {{ string }}) as lastname,
    cast(company as {{ string }}) as company,
    cast(phone as {{ string }}) as phone,
    cast(hs_lead_status as {{ string }}) as hs_lead_status,
    cast(customer_segment as {{ string }}) as customer_segment,
    cast(primary_audience as {{ string }}) as primary_audience,
    cast(form_source as {{ string }}) as form_source,
    cast(original_touch_source as {{ string }}) as original_touch_source,
    cast(original_touch_campaign as {{ string }}) as original_touch_campaign,
    cast({{ dbt.datediff(epoch, 'original_touch_at', 'millisecond') }} as {{ string }}) as original_touch_at,
    cast(latest_touch_source as {{ string }}) as latest_touch_source,
    cast(latest_touch_campaign as {{ string }}) as latest_touch_campaign,
    cast({{ dbt.datediff(epoch, 'latest_touch_at', 'millisecond') }} as {{ string }}) as latest_touch_at,
    cast(webinar_history as {{ string }}) as webinar_history,
    cast({{ dbt.datediff(epoch, 'demo_booked_at', 'millisecond') }} as {{ string }}) as demo_booked_at,
    cast(demo_event_name as {{ string }}) as demo_event_name,
    cast(customer_status as {{ string }}) as customer_status,
    cast(engagement_tier as {{ string }}) as engagement_tier
from properties
