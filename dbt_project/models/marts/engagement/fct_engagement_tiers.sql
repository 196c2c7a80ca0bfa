-- Each contact's engagement tier as of as_of (docs/engagement.md#tier-rules): the current period of
-- int_engagement_tier_history, with the latest engagement behind it.
with engagement as (
    select
        email,
        max(engaged_at) as last_engaged_at,
        max(case when kind = 'click' then engaged_at end) as last_clicked_at
    from {{ ref('int_engagement_events') }}
    group by email
)

select
    history.email,
    history.tier as engagement_tier,
    history.valid_from as tier_since,
    history.previous_tier,
    engagement.last_engaged_at,
    engagement.last_clicked_at
from {{ ref('int_engagement_tier_history') }} as history
left join engagement on history.email = engagement.email
where history.valid_to is null
