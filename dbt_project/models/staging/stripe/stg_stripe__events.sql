-- One row per event from the Events API (reconciliation), staged to the same columns as the webhooks.
with source as (
    select * from {{ source_or_empty('raw_stripe', 'events') }}
)

select
    id as event_id,
    dedup_key,
    type as event_type,
    api_version,
    livemode as is_livemode,
    {{ epoch_seconds_to_timestamp('created') }} as occurred_at,
    {{ stripe_event_data_columns('data') }}
from source
