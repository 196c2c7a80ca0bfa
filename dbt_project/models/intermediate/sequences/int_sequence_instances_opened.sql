-- Step 1 of docs/sequences.md#how-messages-are-made, the opening half: the candidate instances. Each entry
-- trigger a sequence sees (int_sequence_entries_filtered) opens one per its instance key (a key seen twice
-- is one candidate, at its first trigger); a sequence entered once (reentry `never`) keeps only the
-- contact's first. For `after_end` every candidate stays: int_sequence_instances_chosen picks the chain
-- once the ends are known. A table: the exits, the steps and the params all start from it.
{{ config(materialized='table') }}

with sequences as (
    select distinct sequence, reentry_policy
    from {{ ref('sequences') }}
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
    inner join {{ ref('int_sequence_entries_filtered') }} as triggers on sequences.sequence = triggers.sequence
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
        -- a 128-bit number rather than md5's hex text: it never leaves the sequence models, and every step
        -- of every instance carries it
        md5_number({{ dbt.concat(['sequence', "'|'", 'email', "'|'", 'instance_key']) }}) as candidate_id
    from entries
    where key_copy = 1
)

select * from candidates
where reentry_policy <> 'never' or entry_number = 1
