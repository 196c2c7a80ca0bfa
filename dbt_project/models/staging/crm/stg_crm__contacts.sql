-- One row per HubSpot contact (its current state): properties renamed and cast.
with source as (
    select * from {{ source_or_empty('raw_crm', 'contacts') }}
)

select
    id as contact_id,
    email as email_raw,
    {{ normalize_email('email') }} as email,
    {{ is_valid_email(normalize_email('email')) }} as is_valid_email,
    firstname as first_name,
    lastname as last_name,
    company,
    phone,
    lifecyclestage as lifecycle_stage,
    coalesce(lifecyclestage = 'customer', false) as is_customer,
    hs_lead_status as lead_status,
    hubspot_owner_id as owner_id,
    hs_analytics_source as analytics_source,
    hs_latest_source as latest_source,
    customer_segment,
    primary_audience,
    form_source,
    original_touch_source,
    original_touch_campaign,
    {{ iso_text_to_timestamp('original_touch_at') }} as original_touch_at,
    latest_touch_source,
    latest_touch_campaign,
    {{ iso_text_to_timestamp('latest_touch_at') }} as latest_touch_at,
    webinar_history,
    {{ iso_text_to_timestamp('demo_booked_at') }} as demo_booked_at,
    demo_event_name,
    customer_status,
    engagement_tier,
    coalesce(archived, false) as is_archived,
    {{ utc_timestamp('createdate') }} as created_at,
    {{ utc_timestamp('lastmodifieddate') }} as last_modified_at
from source
