-- Desired state of the Brevo contacts (docs/sync-engine.md#desired-state, docs/field-names.md): one row per contact, keyed by `email`, one
-- column per contact attribute, named as Brevo names it (upper case). Booleans are booleans and dates
-- `YYYY-MM-DD` text, as Brevo's attribute types take them; null means "do not write this attribute".
-- The same contacts as sync_crm__contacts (docs/contacts-and-touches.md#both-systems-in-one-run), from dim_contacts.
{%- set string = dbt.type_string() %}

select
    cast(email as {{ string }}) as email,
    cast(first_name as {{ string }}) as {{ adapter.quote('FIRSTNAME') }},
    cast(last_name as {{ string }}) as {{ adapter.quote('LASTNAME') }},
    cast(segment as {{ string }}) as {{ adapter.quote('SEGMENT') }},
    cast(primary_audience as {{ string }}) as {{ adapter.quote('PRIMARY_AUDIENCE') }},
    cast(form_source as {{ string }}) as {{ adapter.quote('FORM_SOURCE') }},
    -- the original touch as the CRM keeps it (docs/contacts-and-touches.md#attribution-is-never-overwritten), so both systems show the same one
    cast(original_touch_source as {{ string }}) as {{ adapter.quote('ORIGINAL_SOURCE') }},
    cast(latest_touch_source as {{ string }}) as {{ adapter.quote('LATEST_SOURCE') }},
    -- docs/contacts-and-touches.md#client-flag: from the CRM's lifecyclestage
    is_client as {{ adapter.quote('IS_CLIENT') }},
    -- docs/demos.md#demo-bookings: true while booked (and once held), false after a plain cancellation or when none was booked
    coalesce(demo_status in ('booked', 'completed'), false) as {{ adapter.quote('DEMO_BOOKED') }},
    cast(cast(demo_start_at as date) as {{ string }}) as {{ adapter.quote('DEMO_DATE') }},
    cast(demo_event_name as {{ string }}) as {{ adapter.quote('DEMO_EVENT_NAME') }},
    cast(webinar_history as {{ string }}) as {{ adapter.quote('WEBINAR_HISTORY') }},
    cast(engagement_tier as {{ string }}) as {{ adapter.quote('ENGAGEMENT_TIER') }},
    cast(customer_status as {{ string }}) as {{ adapter.quote('CUSTOMER_STATUS') }}
from {{ ref('dim_contacts') }}
