-- Each contact's engagement tier over time up to as_of (docs/engagement.md#tier-rules, docs/engagement.md#tier-history): one row per period in a
-- tier, valid_to null for the current one.
--
-- Not a dbt snapshot: a snapshot records what each run happened to see, so it depends on when runs
-- happen and cannot be replayed with as_of. The history is computed from the moments a tier can change:
-- each engagement, 30 days after each click (most_engaged drops), 90 days after each engagement
-- (engaged drops), and when the contact was first seen (new). At each moment:
--   most_engaged  the last click is less than 30 days old (at exactly 30 days it has dropped)
--   engaged       the last open or click is less than 90 days old
--   quiet         an earlier engagement, none in the last 90 days
--   new           no engagement yet
{{ config(materialized='table') }}

with engagements as (
    select email, engaged_at, kind from {{ ref('int_engagement_events') }}
),

-- contacts known from their form submissions, purchases and bookings are `new` until they engage
first_seen as (
    select email, min(seen_at) as first_seen_at
    from (
        select email, submitted_at as seen_at from {{ ref('int_form_submissions_tagged') }}
        union all
        select email, purchased_at from {{ ref('int_purchases') }}
        union all
        select email, occurred_at from {{ ref('int_demo_events') }}
    ) as touches
    group by email
),

moments as (
    select email, engaged_at as moment_at, kind from engagements
    union all
    select email, {{ dbt.dateadd('day', 30, 'engaged_at') }}, cast(null as {{ dbt.type_string() }})
    from engagements
    where kind = 'click'
    union all
    select email, {{ dbt.dateadd('day', 90, 'engaged_at') }}, cast(null as {{ dbt.type_string() }})
    from engagements
    union all
    select email, first_seen_at, cast(null as {{ dbt.type_string() }})
    from first_seen
),

-- the latest click and engagement at or before each moment (a range frame includes ties)
latest as (
    select
        email,
        moment_at,
        max(case when kind = 'click' then moment_at end) over (
            partition by email order by moment_at range between unbounded preceding and current row
        ) as last_click_at,
        max(case when kind is not null then moment_at end) over (
            partition by email order by moment_at range between unbounded preceding and current row
        ) as last_engaged_at
    from moments
    where moment_at <= {{ as_of() }}
),

tiers as (
    select distinct
        email,
        moment_at,
        case
            when last_click_at > {{ dbt.dateadd('day', -30, 'moment_at') }} then 'most_engaged'
            when last_engaged_at > {{ dbt.dateadd('day', -90, 'moment_at') }} then 'engaged'
            when last_engaged_at is not null then 'quiet'
            else 'new'
        end as tier
    from latest
),

with_previous as (
    select
        *,
        lag(tier) over (partition by email order by moment_at) as previous_tier
    from tiers
),

changes as (
    select email, tier, previous_tier, moment_at as valid_from
    from with_previous
    where previous_tier is null or previous_tier <> tier
)

select
    email,
    tier,
    valid_from,
    lead(valid_from) over (partition by email order by valid_from) as valid_to,
    previous_tier
from changes
