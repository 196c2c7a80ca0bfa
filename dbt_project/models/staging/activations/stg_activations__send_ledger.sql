-- One row per email the activations handed to the provider, or are handing (activations.send_ledger): the
-- ledger the sequence models read to know what was already sent.
with source as (
    select * from {{ source_or_empty('activations', 'send_ledger') }}
)

select
    message_key,
    email,
    sequence,
    step,
    status,
    sent_at,
    provider_message_id,
    send_tag
from source
