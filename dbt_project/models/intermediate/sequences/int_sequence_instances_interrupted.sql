-- Step 2 of docs/sequences.md#how-messages-are-made: what interrupts each candidate instance. Its exit is
-- the first exit trigger after the entry (of the contact, or of the instance's own key: exit_scope); the
-- pause and resume triggers after the entry and before the exit pause and resume it. One row per such
-- trigger (the exit: only the first): the instance is paused when its latest pause/resume row is a pause,
-- and a resume that follows a pause moves the steps (int_sequence_steps_scheduled).
-- A table: the due times and the statuses both read it.
{{ config(materialized='table') }}

with sequences as (
    select distinct
        sequence,
        exit_scope,
        coalesce(exit_triggers, '') as exit_triggers,
        coalesce(pause_triggers, '') as pause_triggers,
        coalesce(resume_triggers, '') as resume_triggers
    from {{ ref('sequences') }}
),

triggers as (
    select * from {{ ref('int_sequence_triggers') }}
    where occurred_at <= {{ as_of() }}
),

candidates as (
    select * from {{ ref('int_sequence_instances_opened') }}
),

trigger_names as (
    select distinct trigger from triggers
),

role_names as (
    select 'exit' as role
    union all
    select 'pause' as role
    union all
    select 'resume' as role
),

-- which trigger plays which role in which sequence (the file holds `|`-separated lists)
trigger_roles as (
    select sequences.sequence, names.trigger, roles.role
    from sequences
    cross join trigger_names as names
    cross join role_names as roles
    where {{ in_pipe_list(
        'names.trigger',
        "case roles.role when 'exit' then sequences.exit_triggers "
        ~ "when 'pause' then sequences.pause_triggers else sequences.resume_triggers end") }}
),

exit_hits as (
    select
        candidates.candidate_id,
        triggers.trigger,
        triggers.occurred_at,
        row_number() over (
            partition by candidates.candidate_id order by triggers.occurred_at, triggers.trigger
        ) as hit_number
    from candidates
    inner join sequences on candidates.sequence = sequences.sequence
    inner join trigger_roles
        on candidates.sequence = trigger_roles.sequence and trigger_roles.role = 'exit'
    inner join triggers
        on trigger_roles.trigger = triggers.trigger
        and candidates.email = triggers.email
        and candidates.entered_at < triggers.occurred_at
        and (sequences.exit_scope = 'contact' or candidates.instance_key = triggers.instance_key)
),

exits as (
    select candidate_id, occurred_at as exited_at, trigger as exit_trigger
    from exit_hits
    where hit_number = 1
),

pause_resume_events as (
    select
        candidates.candidate_id,
        trigger_roles.role,
        triggers.trigger,
        triggers.occurred_at
    from candidates
    inner join trigger_roles
        on candidates.sequence = trigger_roles.sequence and trigger_roles.role in ('pause', 'resume')
    inner join triggers
        on trigger_roles.trigger = triggers.trigger
        and candidates.email = triggers.email
        and candidates.entered_at < triggers.occurred_at
    left join exits on candidates.candidate_id = exits.candidate_id
    where exits.exited_at is null or triggers.occurred_at < exits.exited_at
)

select
    candidate_id,
    'exit' as role,
    exit_trigger as trigger,
    exited_at as occurred_at,
    cast(null as {{ dbt.type_string() }}) as previous_role,
    true as is_latest
from exits

union all

select
    candidate_id,
    role,
    trigger,
    occurred_at,
    lag(role) over (partition by candidate_id order by occurred_at, role) as previous_role,
    row_number() over (partition by candidate_id order by occurred_at desc, role desc) = 1 as is_latest
from pause_resume_events
