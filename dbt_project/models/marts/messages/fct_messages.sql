-- Every lifecycle message as of as_of: sent, sending (answer pending), planned (due now),
-- scheduled (later), skipped, suppressed or exited, one row per message key, with may_send: whether the
-- rules let it go out now. The logic is in int_sequence_messages.
select
    message_key,
    email,
    sequence,
    kind,
    instance_key,
    step,
    template_id,
    due_at,
    status,
    may_send,
    sent_at,
    params,
    reason
from {{ ref('int_sequence_messages') }}
