-- Step 4 of docs/sequences.md#how-messages-are-made: each step's status (docs/sequences.md#message-statuses).
-- The ledger's when the key is there as sent or sending (never planned again); else exited (the instance
-- exited or is paused), skipped (expired: past the anchor of a step that must not go late), scheduled
-- (not due yet), suppressed (marketing to a suppressed contact), skipped (superseded: a later step of the
-- instance is due or handled, docs/sequences.md#several-steps-due-at-once), planned. may_send: whether
-- the rules let the message go out now; for a `sending` one it tells the activations whether they may
-- send it again when the provider has no record of it (and `reason` says why not).
-- A table: the instance states and int_sequence_messages both read it.
{{ config(materialized='table') }}

with interruptions as (
    select * from {{ ref('int_sequence_instances_interrupted') }}
),

exits as (
    select candidate_id, occurred_at as exited_at, trigger as exit_trigger
    from interruptions
    where role = 'exit'
),

pauses as (
    select candidate_id, occurred_at as paused_at, trigger as pause_trigger
    from interruptions
    where role = 'pause' and is_latest
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

states as (
    select
        scheduled.*,
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
    from {{ ref('int_sequence_steps_scheduled') }} as scheduled
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
)

select
    states.message_key,
    states.candidate_id,
    states.sequence,
    states.reentry_policy,
    states.email,
    states.instance_key,
    states.entry_number,
    states.entered_at,
    states.anchor_at,
    states.step,
    states.kind,
    states.template_id,
    states.due_at,
    states.sent_at,
    states.exited_at,
    states.paused_at,
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
