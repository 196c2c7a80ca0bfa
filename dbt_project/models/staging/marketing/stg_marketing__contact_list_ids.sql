-- One row per (Brevo contact, list): the contact's listIds, which dlt loads as a child table keyed by
-- the parent row's _dlt_id (a join within one source, to name the contact).
with list_ids as (
    select * from {{ source_or_empty('raw_marketing', 'contacts__list_ids') }}
),

contacts as (
    select * from {{ source_or_empty('raw_marketing', 'contacts') }}
)

select
    contacts.id as contact_id,
    {{ normalize_email('contacts.email') }} as email,
    list_ids.value as list_id
from list_ids
inner join contacts on list_ids._dlt_parent_id = contacts._dlt_id
