-- Each contact's sequence instances as of as_of, one row per instance (SPEC §3.9): when it was entered,
-- whether it is active, paused (nurture while a demo is booked), finished (nothing left to send) or
-- exited (an exit trigger), and when it ended.
select
    email,
    sequence,
    instance_key,
    min(entered_at) as entered_at,
    min(instance_status) as status,
    min(instance_ended_at) as ended_at,
    sum(case when status = 'sent' then 1 else 0 end) as sent_steps,
    count(*) as steps
from {{ ref('int_sequence_messages') }}
group by email, sequence, instance_key
