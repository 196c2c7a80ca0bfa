-- Step 3 of docs/sequences.md#how-messages-are-made: every step of every candidate instance, with its
-- message key (docs/sequences.md#message-keys), its due time and what the send ledger holds for it. Due:
-- the entry (or the anchor) + the step's offset. A resume that follows a pause makes the first step after
-- the last one handled by then (ledger) due resume_delay_days after the resume; the later steps keep their
-- spacing. A ledger key counts when it is there as sent or sending (a sent copy first); a withdrawn one
-- does not, so a step withdrawn while paused is the first one due again on resume.
with sequence_steps as (
    select
        sequence,
        step,
        kind,
        template_id,
        offset_from,
        offset_days * 24 + offset_hours as offset_hours,
        expires_at_anchor,
        resume_delay_days
    from {{ ref('sequences') }}
),

ledger as (
    select message_key, status, sent_at
    from (
        select
            message_key,
            status,
            sent_at,
            row_number() over (
                partition by message_key
                order by case when status = 'sent' then 0 else 1 end, sent_at
            ) as copy_number
        from {{ ref('stg_activations__send_ledger') }}
        where status in ('sent', 'sending')
    ) as copies
    where copy_number = 1
),

resumes as (
    select candidate_id, occurred_at as resumed_at
    from {{ ref('int_sequence_instances_interrupted') }}
    where role = 'resume' and previous_role = 'pause'
),

-- the entry's params stay behind (int_sequence_messages joins them back): the rows from here on are one per step
steps_of_candidates as (
    select
        candidates.sequence,
        candidates.reentry_policy,
        candidates.email,
        candidates.instance_key,
        candidates.entered_at,
        candidates.anchor_at,
        candidates.entry_number,
        candidates.candidate_id,
        steps.step,
        steps.kind,
        steps.template_id,
        steps.offset_hours,
        steps.expires_at_anchor,
        steps.resume_delay_days,
        {{ dbt.dateadd(
            'hour', 'steps.offset_hours',
            "case when steps.offset_from = 'anchor' then candidates.anchor_at else candidates.entered_at end") }}
            as scheduled_at,
        {{ dbt.hash(dbt.concat([
            'candidates.email', "'|'", 'candidates.sequence', "'|'", 'candidates.instance_key', "'|'",
            dbt.cast('steps.step', dbt.type_string())])) }} as message_key
    from {{ ref('int_sequence_instances_opened') }} as candidates
    inner join sequence_steps as steps on candidates.sequence = steps.sequence
),

-- the first step after the last one handled (in the ledger) at each resume
resume_points as (
    select
        resumes.candidate_id,
        resumes.resumed_at,
        min(pending.step) as first_step
    from resumes
    inner join steps_of_candidates as pending on resumes.candidate_id = pending.candidate_id
    where not exists (
        select 1
        from steps_of_candidates as handled
        inner join ledger on handled.message_key = ledger.message_key
        where handled.candidate_id = resumes.candidate_id
            and handled.step >= pending.step
            and coalesce(ledger.sent_at, resumes.resumed_at) <= resumes.resumed_at
    )
    group by resumes.candidate_id, resumes.resumed_at
),

resume_schedules as (
    select
        resume_points.candidate_id,
        resume_points.resumed_at,
        resume_points.first_step,
        first_steps.offset_hours as first_offset_hours,
        first_steps.resume_delay_days
    from resume_points
    inner join steps_of_candidates as first_steps
        on resume_points.candidate_id = first_steps.candidate_id
        and resume_points.first_step = first_steps.step
),

-- each step follows the latest resume whose first step is at or before it
applicable_resumes as (
    select
        steps.message_key,
        resume_schedules.resumed_at,
        resume_schedules.first_offset_hours,
        resume_schedules.resume_delay_days,
        row_number() over (partition by steps.message_key order by resume_schedules.resumed_at desc) as recency
    from steps_of_candidates as steps
    inner join resume_schedules
        on steps.candidate_id = resume_schedules.candidate_id
        and steps.step >= resume_schedules.first_step
)

select
    steps.message_key,
    steps.candidate_id,
    steps.sequence,
    steps.reentry_policy,
    steps.email,
    steps.instance_key,
    steps.entry_number,
    steps.entered_at,
    steps.anchor_at,
    steps.step,
    steps.kind,
    steps.template_id,
    steps.expires_at_anchor,
    case
        when applicable_resumes.resumed_at is null then steps.scheduled_at
        else {{ dbt.dateadd(
            'hour',
            'applicable_resumes.resume_delay_days * 24 + steps.offset_hours - applicable_resumes.first_offset_hours',
            'applicable_resumes.resumed_at') }}
    end as due_at,
    ledger.status as ledger_status,
    ledger.sent_at
from steps_of_candidates as steps
left join applicable_resumes
    on steps.message_key = applicable_resumes.message_key and applicable_resumes.recency = 1
left join ledger on steps.message_key = ledger.message_key
