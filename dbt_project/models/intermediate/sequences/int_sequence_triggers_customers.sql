-- The triggers of a contact's standing as a customer and reader: `purchase` (withdrawn when refunded,
-- docs/purchases.md#refunds), `became_quiet` / `engaged_again` (docs/engagement.md#re-engagement) and
-- `churned` / `reactivated` (docs/churn.md#customer-status). int_sequence_triggers unions it with the other
-- domains; the columns are that model's, in its order.
with tier_history as (
    select * from {{ ref('int_engagement_tier_history') }}
),

status_changes as (
    select * from {{ ref('int_customer_status_changes') }}
    where is_transition
)

select
    email,
    'purchase' as trigger_name,
    purchased_at as occurred_at,
    session_id as instance_key,
    cast(null as {{ dbt.type_timestamp() }}) as anchor_at,
    refunded_at as withdrawn_at,
    cast(null as {{ dbt.type_string() }}) as form_id,
    cast(null as {{ dbt.type_string() }}) as webinar_code,
    {{ dbt.replace('product_ids', "', '", "'|'") }} as product_ids,
    {{ json_object_text([
        ('session_id', 'session_id', 'string'),
        ('purchased_at', 'purchased_at', 'timestamp'),
        ('amount_total', 'amount_total', 'number'),
        ('currency', 'currency', 'string'),
        ('product_ids', 'product_ids', 'string'),
        ('product_names', 'product_names', 'string'),
    ]) }} as params
from {{ ref('int_purchases') }}

union all
select
    email,
    'became_quiet',
    valid_from,
    {{ iso_utc_text('valid_from') }},
    null,
    null,
    null, null, null,
    {{ json_object_text([('previous_tier', 'previous_tier', 'string')]) }}
from tier_history
where tier = 'quiet' and previous_tier in ('engaged', 'most_engaged')

union all
select
    email,
    'engaged_again',
    valid_from,
    {{ iso_utc_text('valid_from') }},
    null,
    null,
    null, null, null,
    {{ json_object_text([('tier', 'tier', 'string')]) }}
from tier_history
where tier in ('engaged', 'most_engaged') and previous_tier = 'quiet'

union all
select
    email,
    'churned',
    changed_at,
    {{ iso_utc_text('changed_at') }},
    null,
    null,
    null, null, null,
    {{ json_object_text([
        ('churned_at', 'changed_at', 'timestamp'),
        ('reason', 'reason', 'string'),
        ('subscription_id', 'subscription_id', 'string'),
    ]) }}
from status_changes
where status = 'churned'

union all
select
    email,
    'reactivated',
    changed_at,
    {{ iso_utc_text('changed_at') }},
    null,
    null,
    null, null, null,
    {{ json_object_text([('reason', 'reason', 'string')]) }}
from status_changes
where status = 'active' and previous_status = 'churned'
