-- One row per Brevo contact (its current state).
with source as (
    select * from {{ source_or_empty('raw_marketing', 'contacts') }}
)

select
    id as contact_id,
    email as email_raw,
    {{ normalize_email('email') }} as email,
    {{ is_valid_email(normalize_email('email')) }} as is_valid_email,
    attributes__firstname as first_name,
    attributes__lastname as last_name,
    attributes__sms as sms,
    coalesce(email_blacklisted, false) as is_email_blocklisted,
    coalesce(sms_blacklisted, false) as is_sms_blocklisted,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('modified_at') }} as modified_at
from source
