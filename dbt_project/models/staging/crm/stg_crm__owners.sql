-- One row per HubSpot owner.
with source as (
    select * from {{ source_or_empty('raw_crm', 'owners') }}
)

select
    id as owner_id,
    email as email_raw,
    {{ normalize_email('email') }} as email,
    first_name,
    last_name,
    type as owner_type,
    user_id,
    coalesce(archived, false) as is_archived,
    {{ utc_timestamp('created_at') }} as created_at,
    {{ utc_timestamp('updated_at') }} as updated_at
from source
