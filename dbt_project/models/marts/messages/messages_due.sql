-- The messages to send now (docs/sync-engine.md#desired-state): planned and due at or before as_of. The activations send each
-- (template_id and params to email) and record its key in activations.send_ledger, which takes it out of
-- the next run's rows: a key is sent at most once, ever.
select
    message_key,
    email,
    sequence,
    kind,
    instance_key,
    step,
    template_id,
    due_at,
    params
from {{ ref('fct_messages') }}
where status = 'planned'
    and due_at <= {{ as_of() }}
