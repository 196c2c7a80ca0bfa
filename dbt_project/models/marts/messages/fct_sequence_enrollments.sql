-- Each contact's sequence instances as of as_of, one row per instance (docs/sequences.md#how-messages-are-made): when it was entered,
-- whether it is active, paused (nurture while a demo is booked), finished (nothing left to send) or
-- exited (an exit trigger), and when it ended.
-- list_name: the marketing platform's list its active members join (seeds/sequences.csv), if any.
select
    messages.email,
    messages.sequence,
    messages.instance_key,
    min(messages.entered_at) as entered_at,
    min(messages.instance_status) as status,
    min(messages.instance_ended_at) as ended_at,
    sum(case when messages.status = 'sent' then 1 else 0 end) as sent_steps,
    count(*) as steps,
    min(definitions.list_name) as list_name
from {{ ref('int_sequence_messages') }} as messages
inner join {{ ref('int_sequence_definitions') }} as definitions on messages.sequence = definitions.sequence
group by messages.email, messages.sequence, messages.instance_key
