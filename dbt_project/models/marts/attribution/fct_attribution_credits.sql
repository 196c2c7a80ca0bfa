-- Each conversion's credit spread over the touches before it, one row per attribution model x conversion x
-- touch that receives credit. Per model, a conversion's credits sum to 1 and its value_credit to its value
-- (1, or a purchase's net revenue in its own currency). Touches in the lookback window only
-- (int_attribution_touch_paths); a conversion with none credits one '(unattributed)' row.
--   first_touch     all to the earliest touch
--   last_touch      all to the latest touch
--   linear          equally to every touch
--   position_based  40 % to the first, 40 % to the last, 20 % shared by those between (one touch: all of
--                   it; two: half each)
--   data_driven     to each channel its Shapley share (int_attribution_shapley_shares), split equally
--                   among that channel's touches in the path
with paths as (
    select * from {{ ref('int_attribution_touch_paths') }}
),

path_coalitions as (
    select
        conversion_id,
        {{ dbt.listagg('channel', "'|'", 'order by channel') }} as coalition
    from (select distinct conversion_id, channel from paths where channel is not null) as path_channels
    group by conversion_id
),

channel_touches as (
    select conversion_id, channel, count(*) as touches_of_channel
    from paths
    where channel is not null
    group by conversion_id, channel
),

touched as (
    select
        paths.*,
        shares.share / channel_touches.touches_of_channel as data_driven_credit
    from paths
    inner join path_coalitions on paths.conversion_id = path_coalitions.conversion_id
    inner join channel_touches
        on paths.conversion_id = channel_touches.conversion_id and paths.channel = channel_touches.channel
    left join {{ ref('int_attribution_shapley_shares') }} as shares
        on paths.conversion_type = shares.conversion_type
        and path_coalitions.coalition = shares.coalition
        and paths.channel = shares.channel
    where paths.touches_in_path > 0
),

attribution_models as (
    {%- for model in ['first_touch', 'last_touch', 'linear', 'position_based', 'data_driven'] %}
    select '{{ model }}' as attribution_model
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

credited as (
    select
        attribution_models.attribution_model,
        touched.*,
        case attribution_models.attribution_model
            when 'first_touch' then case when touch_position = 1 then 1.0 else 0.0 end
            when 'last_touch' then case when touch_position = touches_in_path then 1.0 else 0.0 end
            when 'linear' then 1.0 / touches_in_path
            when 'position_based' then
                case
                    when touches_in_path = 1 then 1.0
                    when touches_in_path = 2 then 0.5
                    when touch_position = 1 or touch_position = touches_in_path then 0.4
                    else 0.2 / (touches_in_path - 2)
                end
            else data_driven_credit
        end as credit
    from touched
    cross join attribution_models
),

unattributed as (
    select
        attribution_models.attribution_model,
        paths.*,
        1.0 as credit
    from paths
    cross join attribution_models
    where paths.touches_in_path = 0
)

select
    attribution_model,
    conversion_id,
    conversion_type,
    email,
    converted_at,
    conversion_month,
    touch_id,
    touch_occurred_at,
    touch_type,
    source_basis,
    source,
    medium,
    campaign,
    channel,
    credit,
    credit * value as value_credit,
    currency,
    {{ dbt.datediff('touch_occurred_at', 'converted_at', 'day') }} as days_before_conversion
from credited
where credit > 0

union all

select
    attribution_model,
    conversion_id,
    conversion_type,
    email,
    converted_at,
    conversion_month,
    null,
    null,
    null,
    'none',
    '(unattributed)',
    null,
    null,
    '(unattributed)',
    credit,
    credit * value,
    currency,
    null
from unattributed
