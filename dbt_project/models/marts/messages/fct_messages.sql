-- Every lifecycle message as of as_of (SPEC §5.4): sent, planned (due now), scheduled (later), skipped,
-- suppressed or exited, one row per message key. The logic is in int_sequence_messages.
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
    sent_at,
    params,
    reason
from {{ ref('int_sequence_messages') }}
