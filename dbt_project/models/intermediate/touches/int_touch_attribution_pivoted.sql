-- One row per contact with a touch: the original (earliest) and the latest touch side by side, with
-- their source, medium, campaign and time (docs/contacts-and-touches.md#touch-source). Ordering and ties: int_touches_ranked.
with touches as (
    select * from {{ ref('int_touches_ranked') }}
),

counts as (
    select email, count(*) as touch_count
    from touches
    group by email
)

select
    counts.email,
    counts.touch_count,
    original.touch_id as original_touch_id,
    original.touch_type as original_touch_type,
    original.source as original_touch_source,
    original.medium as original_touch_medium,
    original.campaign as original_touch_campaign,
    original.occurred_at as original_touch_at,
    latest.touch_id as latest_touch_id,
    latest.touch_type as latest_touch_type,
    latest.source as latest_touch_source,
    latest.medium as latest_touch_medium,
    latest.campaign as latest_touch_campaign,
    latest.occurred_at as latest_touch_at
from counts
inner join touches as original
    on counts.email = original.email and original.touch_number = 1
inner join touches as latest
    on counts.email = latest.email and latest.is_latest_touch
