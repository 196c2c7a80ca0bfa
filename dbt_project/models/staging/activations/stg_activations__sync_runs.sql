-- One row per activation run (activations.sync_runs): one destination object's sync, or the emails.
with source as (
    select * from {{ source_or_empty('activations', 'sync_runs') }}
)

select
    run_id as sync_run_id,
    destination,
    object as destination_object,
    started_at,
    finished_at,
    dry_run as is_dry_run,
    considered as rows_considered,
    changed as rows_changed,
    sent as rows_sent,
    rejected as rows_rejected,
    api_calls as api_calls_json,
    status,
    error,
    as_of
from source
