-- Every message of every sequence instance as of as_of (docs/sequences.md#how-messages-are-made): the sequences file
-- (seeds/sequences.csv) joined to the trigger stream (int_sequence_triggers), with the send ledger
-- deciding what was already sent. Generic: no sequence is named here.
--
-- 1. Candidate instances: each entry trigger opens one, per its instance key (each_trigger), only the
--    first (never), or each one until the re-entry rule picks (after_end, step 6). A targeted sequence
--    (the file's entry_* lists) sees only the entry triggers its filters let in.
-- 2. Exit: the first exit trigger after the entry (of the contact, or of the instance's own key).
--    Pause and resume triggers after the entry (and before the exit) pause it; the state is the last one.
-- 3. Due times: the entry (or the anchor) + the step's offset. A resume that follows a pause makes the
--    first step after the last one handled by then (ledger) due resume_delay_days after the resume; the
--    later steps keep their spacing.
-- 4. Status: the ledger's when the key is there as sent or sending (never planned again); else exited
--    (the instance exited or is paused), skipped (expired: past the anchor of a step that must not go
--    late), scheduled (not due yet), suppressed (marketing to a suppressed contact), skipped (superseded:
--    a later step of the instance is due or handled), planned. A withdrawn ledger row (an email whose
--    answer was lost, that the provider never got, and that the rules no longer allowed) does not count:
--    the message is whatever the rules make it now, so a paused nurture step is planned again on resume.
--    may_send: whether the rules let the message go out now. For a planned message it is true; for a
--    `sending` one it tells the activations whether they may send it again when the provider has no
--    record of it (and `reason` says why not).
-- 5. Instance status: finished when no step is left to send or schedule; else exited, paused or active.
-- 6. after_end: a new instance opens on the first entry trigger at least reentry_after_days after the
--    previous instance ended; the chain is walked with a recursive CTE (candidates only know their own end).
-- 7. Params (docs/sequences.md#params-of-every-send): sequence, step, and the entry trigger's params; a merge sequence instead carries
--    the list `merge_param` of every trigger merged into the instance up to the send, minus withdrawn ones
--    (refunds). A table: fct_messages, messages_due and fct_sequence_enrollments read it.
{{ config(materialized='table') }}

with recursive

sequence_steps as (
    select
        sequence,
        step,
        kind,
        template_id,
        entry_trigger,
        offset_from,
        offset_days * 24 + offset_hours as offset_hours,
        expires_at_anchor,
        -- an empty list is null in the seed, '' in a unit test's fixture
        coalesce(entry_audiences, '') as entry_audiences,
        coalesce(entry_segments, '') as entry_segments,
        coalesce(entry_products, '') as entry_products,
        coalesce(entry_webinar_codes, '') as entry_webinar_codes,
        coalesce(entry_forms, '') as entry_forms,
        coalesce(exit_triggers, '') as exit_triggers,
        exit_scope,
        coalesce(pause_triggers, '') as pause_triggers,
        coalesce(resume_triggers, '') as resume_triggers,
        resume_delay_days,
        merge_policy,
        merge_param,
        reentry_policy,
        reentry_after_days
    from {{ ref('sequences') }}
),

sequences as (
    select distinct
        sequence, entry_trigger, entry_audiences, entry_segments, entry_products, entry_webinar_codes,
        entry_forms, exit_triggers, exit_scope, pause_triggers, resume_triggers, resume_delay_days,
        merge_policy, merge_param, reentry_policy, reentry_after_days
    from sequence_steps
),

triggers as (
    select * from {{ ref('int_sequence_triggers') }}
    where occurred_at <= {{ as_of() }}
),

-- The entry triggers each sequence sees: its entry trigger, narrowed by its entry filters (an empty list
-- lets every trigger in; several lists must all let it in): the contact's audience and segment as tagged
-- at the trigger, the submission's webinar code and form, any product of the purchase. From here on a
-- targeted sequence is an ordinary one on this narrower stream: re-entry and merge count only these.
entry_triggers as (
    select sequences.sequence, triggers.*
    from sequences
    inner join triggers on sequences.entry_trigger = triggers.trigger
    where (sequences.entry_audiences = ''
            or {{ in_pipe_list('triggers.primary_audience', 'sequences.entry_audiences') }})
        and (sequences.entry_segments = ''
            or {{ in_pipe_list('triggers.segment', 'sequences.entry_segments') }})
        and (sequences.entry_webinar_codes = ''
            or {{ in_pipe_list('triggers.webinar_code', 'sequences.entry_webinar_codes') }})
        and (sequences.entry_forms = '' or {{ in_pipe_list('triggers.form_id', 'sequences.entry_forms') }})
        and (sequences.entry_products = ''
            or {{ pipe_lists_overlap('triggers.product_ids', 'sequences.entry_products') }})
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

-- one reason per suppressed contact: the earliest
suppressions as (
    select email, reason
    from (
        select
            email,
            reason,
            row_number() over (partition by email order by suppressed_at, reason) as suppression_number
        from {{ ref('int_marketing_suppressions') }}
        where suppressed_at <= {{ as_of() }}
    ) as ranked
    where suppression_number = 1
),

entries as (
    select
        sequences.sequence,
        sequences.reentry_policy,
        triggers.email,
        triggers.instance_key,
        triggers.occurred_at as entered_at,
        triggers.anchor_at,
        triggers.params as entry_params,
        row_number() over (
            partition by sequences.sequence, triggers.email, triggers.instance_key
            order by triggers.occurred_at, triggers.params
        ) as key_copy
    from sequences
    inner join entry_triggers as triggers on sequences.sequence = triggers.sequence
),

candidates as (
    select
        sequence,
        reentry_policy,
        email,
        instance_key,
        entered_at,
        anchor_at,
        entry_params,
        row_number() over (partition by sequence, email order by entered_at, instance_key) as entry_number,
        -- a 128-bit number rather than md5's hex text: it never leaves this model, and every step of every
        -- instance carries it
        md5_number({{ dbt.concat(['sequence', "'|'", 'email', "'|'", 'instance_key']) }}) as candidate_id
    from entries
    where key_copy = 1
),

kept_candidates as (
    select * from candidates
    where reentry_policy <> 'never' or entry_number = 1
),

exit_hits as (
    select
        candidates.candidate_id,
        triggers.trigger,
        triggers.occurred_at,
        row_number() over (
            partition by candidates.candidate_id order by triggers.occurred_at, triggers.trigger
        ) as hit_number
    from kept_candidates as candidates
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
    from kept_candidates as candidates
    inner join trigger_roles
        on candidates.sequence = trigger_roles.sequence and trigger_roles.role in ('pause', 'resume')
    inner join triggers
        on trigger_roles.trigger = triggers.trigger
        and candidates.email = triggers.email
        and candidates.entered_at < triggers.occurred_at
    left join exits on candidates.candidate_id = exits.candidate_id
    where exits.exited_at is null or triggers.occurred_at < exits.exited_at
),

pause_resume_ordered as (
    select
        *,
        lag(role) over (partition by candidate_id order by occurred_at, role) as previous_role,
        row_number() over (partition by candidate_id order by occurred_at desc, role desc) as recency
    from pause_resume_events
),

pauses as (
    select candidate_id, occurred_at as paused_at, trigger as pause_trigger
    from pause_resume_ordered
    where recency = 1 and role = 'pause'
),

resumes as (
    select pause_resume_ordered.candidate_id, pause_resume_ordered.occurred_at as resumed_at
    from pause_resume_ordered
    where pause_resume_ordered.role = 'resume' and pause_resume_ordered.previous_role = 'pause'
),

-- the entry's params stay behind (they are joined back at the end): the rows from here on are one per step
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
    from kept_candidates as candidates
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
),

scheduled as (
    select
        steps.*,
        case
            when applicable_resumes.resumed_at is null then steps.scheduled_at
            else {{ dbt.dateadd(
                'hour',
                'applicable_resumes.resume_delay_days * 24 + steps.offset_hours - applicable_resumes.first_offset_hours',
                'applicable_resumes.resumed_at') }}
        end as due_at
    from steps_of_candidates as steps
    left join applicable_resumes
        on steps.message_key = applicable_resumes.message_key and applicable_resumes.recency = 1
),

states as (
    select
        scheduled.*,
        ledger.status as ledger_status,
        ledger.sent_at,
        exits.exited_at,
        exits.exit_trigger,
        pauses.paused_at,
        pauses.pause_trigger,
        suppressions.reason as suppression_reason,
        case
            when exits.exited_at is not null then 'exited'
            when pauses.paused_at is not null then 'paused'
            when scheduled.expires_at_anchor and scheduled.anchor_at <= {{ as_of() }} then 'expired'
            when scheduled.due_at > {{ as_of() }} then 'scheduled'
            when scheduled.kind = 'marketing' and suppressions.email is not null then 'suppressed'
            else 'due'
        end as rule_state
    from scheduled
    left join ledger on scheduled.message_key = ledger.message_key
    left join exits on scheduled.candidate_id = exits.candidate_id
    left join pauses on scheduled.candidate_id = pauses.candidate_id
    left join suppressions on scheduled.email = suppressions.email
),

handled_states as (
    select
        *,
        case when ledger_status is not null then 'ledger' else rule_state end as state,
        coalesce(ledger_status = 'sent', false) as is_sent
    from states
),

latest_due_steps as (
    select candidate_id, max(step) as latest_step
    from handled_states
    where state in ('ledger', 'due')
    group by candidate_id
),

statuses as (
    select
        states.*,
        case states.state
            when 'ledger' then states.ledger_status
            when 'exited' then 'exited'
            when 'paused' then 'exited'
            when 'expired' then 'skipped'
            when 'scheduled' then 'scheduled'
            when 'suppressed' then 'suppressed'
            when 'due' then case when states.step < latest_due_steps.latest_step then 'skipped' else 'planned' end
        end as status,
        -- the rules' verdict, also for a key in the ledger: a `sending` message is sent again only if true
        coalesce(not states.is_sent and states.rule_state = 'due'
                 and states.step >= latest_due_steps.latest_step, false) as may_send,
        case when not states.is_sent then
            case states.rule_state
                when 'exited' then {{ dbt.concat(["'exit:'", 'states.exit_trigger']) }}
                when 'paused' then {{ dbt.concat(["'pause:'", 'states.pause_trigger']) }}
                when 'expired' then 'expired'
                when 'scheduled' then case when states.ledger_status is not null then 'not due yet' end
                when 'suppressed' then states.suppression_reason
                when 'due' then case when states.step < latest_due_steps.latest_step then 'superseded' end
            end
        end as reason
    from handled_states as states
    left join latest_due_steps on states.candidate_id = latest_due_steps.candidate_id
),

instances as (
    select
        candidate_id,
        sequence,
        reentry_policy,
        email,
        instance_key,
        entry_number,
        min(entered_at) as entered_at,
        min(exited_at) as exited_at,
        min(paused_at) as paused_at,
        sum(case when status in ('planned', 'scheduled', 'exited') then 1 else 0 end) as open_steps,
        max(coalesce(sent_at, due_at)) as last_step_at
    from statuses
    group by candidate_id, sequence, reentry_policy, email, instance_key, entry_number
),

instance_states as (
    select
        *,
        case
            when open_steps = 0 then 'finished'
            when exited_at is not null then 'exited'
            when paused_at is not null then 'paused'
            else 'active'
        end as instance_status,
        case
            when open_steps = 0 then last_step_at
            when exited_at is not null then exited_at
        end as ended_at
    from instances
),

-- after_end: each candidate's successor, the first candidate far enough after its end
successors as (
    select
        ended.candidate_id,
        following.candidate_id as next_candidate_id,
        row_number() over (
            partition by ended.candidate_id order by following.entered_at, following.instance_key
        ) as successor_number
    from instance_states as ended
    inner join sequences on ended.sequence = sequences.sequence
    inner join instance_states as following
        on ended.sequence = following.sequence
        and ended.email = following.email
        and {{ dbt.dateadd('day', 'sequences.reentry_after_days', 'ended.ended_at') }} <= following.entered_at
    where ended.reentry_policy = 'after_end'
        and ended.ended_at is not null
),

chain as (
    select candidate_id
    from instance_states
    where reentry_policy = 'after_end' and entry_number = 1

    union all

    select successors.next_candidate_id
    from chain
    inner join successors
        on chain.candidate_id = successors.candidate_id and successors.successor_number = 1
),

chosen as (
    select candidate_id
    from instance_states
    where reentry_policy <> 'after_end'
    union all
    select candidate_id from chain
),

chosen_messages as (
    select
        statuses.*,
        instance_states.instance_status,
        instance_states.ended_at,
        sequences.merge_policy,
        sequences.merge_param,
        coalesce(statuses.sent_at, {{ as_of() }}) as params_as_of
    from statuses
    inner join chosen on statuses.candidate_id = chosen.candidate_id
    inner join instance_states on statuses.candidate_id = instance_states.candidate_id
    inner join sequences on statuses.sequence = sequences.sequence
),

merged_params as (
    select
        messages.message_key,
        {{ dbt.listagg('triggers.params', "','", 'order by triggers.occurred_at, triggers.instance_key') }}
            as merged_list
    from chosen_messages as messages
    inner join entry_triggers as triggers
        on messages.merge_policy = 'merge'
        and messages.sequence = triggers.sequence
        and messages.email = triggers.email
        and messages.entered_at <= triggers.occurred_at
        and coalesce(messages.ended_at, messages.params_as_of) >= triggers.occurred_at
        and messages.params_as_of >= triggers.occurred_at
        and (triggers.withdrawn_at is null or messages.params_as_of < triggers.withdrawn_at)
    group by messages.message_key
)

select
    messages.message_key,
    messages.email,
    messages.sequence,
    messages.kind,
    messages.instance_key,
    messages.step,
    messages.template_id,
    messages.entered_at,
    messages.anchor_at,
    messages.due_at,
    messages.status,
    messages.may_send,
    messages.sent_at,
    messages.reason,
    messages.instance_status,
    messages.ended_at as instance_ended_at,
    {{ dbt.concat([
        "'{\"sequence\":'", json_string_text('messages.sequence'),
        "',\"step\":'", dbt.cast('messages.step', dbt.type_string()),
        "case when messages.merge_policy = 'merge' then "
            ~ dbt.concat(["','", json_string_text('messages.merge_param'), "':['",
                          "coalesce(merged_params.merged_list, '')", "']'"])
            ~ " else coalesce(" ~ dbt.concat(["','", "nullif(" ~ json_object_members('entries.entry_params') ~ ", '')"])
            ~ ", '') end",
        "'}'",
    ]) }} as params
from chosen_messages as messages
inner join kept_candidates as entries on messages.candidate_id = entries.candidate_id
left join merged_params on messages.message_key = merged_params.message_key
