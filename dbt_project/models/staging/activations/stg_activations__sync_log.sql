-- One row per key an activation run sent, rejected or would send (activations.sync_log), renamed: `key`
-- and `at` are reserved words in some warehouses.
with source as (
    select * from {{ source_or_empty('activations', 'sync_log') }}
)

select
    run_id as sync_run_id,
    destination,
    object as destination_object,
    key as record_key,
    action,
    outcome,
    reason,
    fields as fields_json,
    {{ adapter.quote('at') }} as logged_at
from source
