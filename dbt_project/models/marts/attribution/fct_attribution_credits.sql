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
    from (
        select distinct conversion_id, channel
        from paths
        where channel is not null
    ) as path_channels
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
    left join path_coalitions on paths.conversion_id = path_coalitions.conversion_id
    left join channel_touches
        on paths.conversion_id = channel_touches.conversion_id and paths.channel = channel_touches.channel
    left join {{ ref('int_attribution_shapley_shares') }} as shares
        on paths.conversion_type = shares.conversion_type
        and path_coalitions.coalition = shares.coalition
        and paths.channel = shares.channel
),

attribution_models as (
    {%- for model in ['first_touch', 'last_touch', 'linear', 'position_based', 'data_driven'] %}
    select '{{ model }}' as attribution_model
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

touches_per_model as (
    select attribution_models.attribution_model, touched.*
    from touched
    cross join attribution_models
),

credited as (
    select
        *,
        case
            -- no touch in the window: the conversion's one '(unattributed)' row
            when touches_in_path = 0 then 1.0
            when attribution_model = 'first_touch' then case when touch_position = 1 then 1.0 else 0.0 end
            when attribution_model = 'last_touch' then case when touch_position = touches_in_path then 1.0 else 0.0 end
            when attribution_model = 'linear' then 1.0 / touches_in_path
            when attribution_model = 'position_based' then
                case
                    when touches_in_path = 1 then 1.0
                    when touches_in_path = 2 then 0.5
                    when touch_position = 1 or touch_position = touches_in_path then 0.4
                    else 0.2 / (touches_in_path - 2)
                end
            else data_driven_credit
        end as credit
    from touches_per_model
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
    coalesce(source_basis, 'none') as source_basis,
    coalesce(source, '(unattributed)') as source,
    medium,
    campaign,
    coalesce(channel, '(unattributed)') as channel,
    credit,
    credit * value as value_credit,
    currency,
    {{ dbt.datediff('touch_occurred_at', 'converted_at', 'day') }} as days_before_conversion
from credited
where credit > 0
