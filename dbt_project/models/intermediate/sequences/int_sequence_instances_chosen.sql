-- Steps 5 and 6 of docs/sequences.md#how-messages-are-made: each candidate instance's status, and which
-- candidates are instances. Status: finished when no step is left to send or schedule; else exited, paused
-- or active. Re-entry `after_end`: a new instance opens on the first entry trigger at least
-- reentry_after_days after the previous instance ended; the chain is walked with a recursive CTE
-- (candidates only know their own end). Every other candidate is an instance (int_sequence_instances_opened
-- kept only the first of a sequence entered once).
with recursive

sequences as (
    select distinct sequence, reentry_after_days
    from {{ ref('sequences') }}
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
    from {{ ref('int_sequence_steps_decided') }}
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
)

select
    instance_states.candidate_id,
    instance_states.sequence,
    instance_states.email,
    instance_states.instance_key,
    instance_states.entered_at,
    instance_states.instance_status,
    instance_states.ended_at,
    instance_states.reentry_policy <> 'after_end' or chain.candidate_id is not null as is_chosen
from instance_states
left join chain on instance_states.candidate_id = chain.candidate_id
