-- One row per sequence of seeds/sequences.csv: the settings that every step row repeats, checked for
-- agreement (a sequence whose rows disagree appears twice and fails the unique test) and for
-- completeness (`is_valid`), with its step count and schedule span.
with steps as (
    select * from {{ ref('sequences') }}
),

definitions as (
    select
        sequence,
        kind,
        entry_trigger,
        exit_triggers,
        exit_scope,
        pause_triggers,
        resume_triggers,
        resume_delay_days,
        merge_policy,
        merge_param,
        reentry_policy,
        reentry_after_days,
        list_name,
        count(*) as step_count,
        min(step) as first_step,
        max(step) as last_step,
        max(offset_days * 24 + offset_hours) as last_offset_hours
    from steps
    group by
        sequence, kind, entry_trigger, exit_triggers, exit_scope, pause_triggers, resume_triggers,
        resume_delay_days, merge_policy, merge_param, reentry_policy, reentry_after_days, list_name
)

select
    *,
    -- pause and resume come together; merge names its list; steps are numbered 1..n
    (pause_triggers is null) = (resume_triggers is null)
        and (merge_policy <> 'merge' or merge_param is not null)
        and first_step = 1
        and last_step = step_count as is_valid
from definitions
