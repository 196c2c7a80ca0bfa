-- One row per key a real activation run sent or the destination rejected, with its run's as-of and status.
-- The inner join leaves out the notes' write-ahead rows, which belong to no run.
--
-- A view, unlike the other marts: the activations write sync_log after dbt's build, so a table built with
-- the other models would lag one run behind. The published copy for analysts
-- (orchestration/publish.py) materializes it as a table after the run's activations.
{{ config(materialized='view') }}

select
    log.sync_run_id,
    runs.as_of,
    runs.started_at as run_started_at,
    runs.status as run_status,
    log.destination,
    log.destination_object,
    log.record_key,
    log.action,
    log.outcome,
    log.outcome in ('accepted', 'sent', 'reconciled') as is_delivered,
    log.outcome = 'rejected' as is_rejected,
    log.reason,
    log.fields_json,
    log.logged_at
from {{ ref('stg_activations__sync_log') }} as log
inner join {{ ref('stg_activations__sync_runs') }} as runs on log.sync_run_id = runs.sync_run_id
where not runs.is_dry_run
