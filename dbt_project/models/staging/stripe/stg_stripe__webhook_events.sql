-- One row per delivered Stripe webhook, with the fields later models need extracted from `data`.
-- A redelivery repeats event_id; intermediate models deduplicate against the API copy too.
with source as (
    select * from {{ source_or_empty('raw_stripe', 'webhook_events') }}
)

select
    id as webhook_id,
    event_id,
    dedup_key,
    type as event_type,
    api_version,
    livemode as is_livemode,
    {{ epoch_seconds_to_timestamp('created') }} as occurred_at,
    {{ utc_timestamp('received_at') }} as received_at,
    {{ stripe_event_data_columns('data') }}
from source
