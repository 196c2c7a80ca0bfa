-- Every message of every sequence instance as of as_of (docs/sequences.md#how-messages-are-made): the
-- sequences file (seeds/sequences.csv) joined to the trigger stream (int_sequence_triggers), with the send
-- ledger deciding what was already sent. Generic: no sequence is named here. The steps, each a model:
-- 1. int_sequence_entries_filtered, int_sequence_instances_opened: the candidate instances.
-- 2. int_sequence_instances_interrupted: exits, pauses and resumes.
-- 3. int_sequence_steps_scheduled: every step's message key and due time.
-- 4. int_sequence_steps_decided: every step's status, may_send and reason.
-- 5-6. int_sequence_instances_chosen: each instance's status, and the re-entry chain.
-- 7. Here: the chosen instances' messages with their params (docs/sequences.md#params-of-every-send):
--    sequence, step, and the entry trigger's params; a merge sequence instead carries the list
--    `merge_param` of every trigger merged into the instance up to the send, minus withdrawn ones
--    (refunds). A table: fct_messages, messages_due and fct_sequence_enrollments read it.
{{ config(materialized='table') }}

with sequences as (
    select distinct sequence, merge_policy, merge_param
    from {{ ref('sequences') }}
),

chosen_messages as (
    select
        steps.*,
        instances.instance_status,
        instances.ended_at,
        sequences.merge_policy,
        sequences.merge_param,
        coalesce(steps.sent_at, {{ as_of() }}) as params_as_of
    from {{ ref('int_sequence_steps_decided') }} as steps
    inner join {{ ref('int_sequence_instances_chosen') }} as instances
        on steps.candidate_id = instances.candidate_id and instances.is_chosen
    inner join sequences on steps.sequence = sequences.sequence
),

merged_params as (
    select
        messages.message_key,
        {{ dbt.listagg('triggers.params', "','", 'order by triggers.occurred_at, triggers.instance_key') }}
            as merged_list
    from chosen_messages as messages
    inner join {{ ref('int_sequence_entries_filtered') }} as triggers
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
inner join {{ ref('int_sequence_instances_opened') }} as entries on messages.candidate_id = entries.candidate_id
left join merged_params on messages.message_key = merged_params.message_key
