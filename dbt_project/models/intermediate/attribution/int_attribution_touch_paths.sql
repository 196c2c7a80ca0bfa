-- Each conversion with the touches that may share its credit, one row per conversion x touch: the
-- contact's touches at or before the conversion and no older than the lookback window (var
-- attribution_lookback_days), numbered from the earliest. A conversion with no touch in the window keeps
-- one row with no touch (touches_in_path 0), so that its credit is still accounted for.
{{ config(materialized='table') }}
{%- set lookback_days = var('attribution_lookback_days') %}

with conversions as (
    select * from {{ ref('fct_conversions') }}
),

touches as (
    select * from {{ ref('fct_touches') }}
),

eligible as (
    select
        conversions.conversion_id,
        touches.touch_id,
        touches.touch_number,
        touches.occurred_at,
        touches.touch_type,
        touches.source_basis,
        touches.source,
        touches.medium,
        touches.campaign,
        touches.channel
    from conversions
    inner join touches
        on conversions.email = touches.email
        and conversions.converted_at >= touches.occurred_at
        and {{ dbt.dateadd('day', -1 * lookback_days, 'conversions.converted_at') }} <= touches.occurred_at
)

select
    conversions.conversion_id,
    conversions.conversion_type,
    conversions.email,
    conversions.converted_at,
    conversions.conversion_month,
    conversions.value,
    conversions.currency,
    eligible.touch_id,
    eligible.occurred_at as touch_occurred_at,
    eligible.touch_type,
    eligible.source_basis,
    eligible.source,
    eligible.medium,
    eligible.campaign,
    eligible.channel,
    row_number() over (partition by conversions.conversion_id order by eligible.touch_number) as touch_position,
    count(eligible.touch_id) over (partition by conversions.conversion_id) as touches_in_path
from conversions
left join eligible on conversions.conversion_id = eligible.conversion_id
