-- The data-driven model: each channel's share of a conversion, from Shapley values over channel
-- coalitions (as Snowplow's fractribution computes them), one row per conversion type x coalition x channel.
--
-- A path is the set of channels (source / medium) a contact touched: before a conversion, within the
-- lookback window (a converting path), or in the window before as_of for a contact with no conversion of
-- that type (a non-converting path). A coalition's value is the conversion rate of the paths made of
-- exactly its channels (0 for a coalition no path has). A channel's Shapley value in a coalition S is
-- its average marginal value over every order in which S's channels could join:
--   sum over subsets T of S holding the channel: (|T|-1)! (|S|-|T|)! / |S|! * (v(T) - v(T minus channel))
-- Negative values count as 0 and the rest are scaled to sum to 1 (all 0: equal shares). A coalition of
-- more than var attribution_max_channels channels is shared equally (is_equal_split_fallback).
-- The sums are exact (exact_sum): every build of the same paths gives the same shares to the last bit.
{{ config(materialized='table') }}
{%- set lookback_days = var('attribution_lookback_days') %}
{%- set max_channels = var('attribution_max_channels') %}

with paths as (
    select * from {{ ref('int_attribution_touch_paths') }}
),

touches as (
    select email, occurred_at, channel from {{ ref('fct_touches') }}
),

conversion_types as (
    select distinct conversion_type from paths
),

converting_channels as (
    select distinct conversion_type, conversion_id as path_id, channel
    from paths
    where channel is not null
),

non_converting_channels as (
    select distinct conversion_types.conversion_type, touches.email as path_id, touches.channel
    from touches
    cross join conversion_types
    where touches.occurred_at >= {{ dbt.dateadd('day', -1 * lookback_days, as_of()) }}
        and not exists (
            select 1 from paths
            where paths.email = touches.email and paths.conversion_type = conversion_types.conversion_type
        )
),

path_coalitions as (
    select
        conversion_type,
        path_id,
        is_converting,
        {{ dbt.listagg('channel', "'|'", 'order by channel') }} as coalition,
        count(*) as coalition_size
    from (
        select conversion_type, path_id, channel, 1 as is_converting from converting_channels
        union all
        select conversion_type, path_id, channel, 0 as is_converting from non_converting_channels
    ) as path_channels
    group by conversion_type, path_id, is_converting
),

coalition_values as (
    select
        conversion_type,
        coalition,
        cast(sum(is_converting) as {{ type_double() }}) / count(*) as conversion_rate
    from path_coalitions
    group by conversion_type, coalition
),

-- the coalitions conversions came from, each channel with its bit (0-based, in channel order)
coalition_members as (
    select
        conversion_type,
        coalition,
        coalition_size,
        channel,
        row_number() over (partition by conversion_type, coalition order by channel) - 1 as bit
    from (
        select distinct path_coalitions.conversion_type, path_coalitions.coalition,
            path_coalitions.coalition_size, converting_channels.channel
        from path_coalitions
        inner join converting_channels
            on path_coalitions.conversion_type = converting_channels.conversion_type
            and path_coalitions.path_id = converting_channels.path_id
        where path_coalitions.is_converting = 1
    ) as members
),

integers as (
    {{ integers_below(2 ** max_channels) }}
),

-- n! for n = 0 .. max_channels, for the Shapley weights (exp of a sum of logarithms, rounded back to the
-- integer it is)
factorials as (
    select
        n,
        round(exp(coalesce(
            sum(ln(case when n > 0 then n end)) over (order by n rows between unbounded preceding and current row),
            0
        ))) as factorial
    from integers
    where n <= {{ max_channels }}
),

-- every non-empty subset (a bit mask) of each coalition up to max_channels, with its members
subset_members as (
    select
        members.conversion_type,
        members.coalition,
        members.coalition_size,
        integers.n as subset_mask,
        members.channel,
        members.bit
    from coalition_members as members
    inner join integers
        on integers.n >= 1
        and integers.n < power(2, members.coalition_size)
        and mod(cast(floor(integers.n / power(2, members.bit)) as {{ dbt.type_int() }}), 2) = 1
    where members.coalition_size <= {{ max_channels }}
),

subsets as (
    select
        named.conversion_type,
        named.coalition,
        named.coalition_size,
        named.subset_mask,
        named.subset_size,
        coalesce(coalition_values.conversion_rate, 0) as subset_value
    from (
        select
            conversion_type,
            coalition,
            coalition_size,
            subset_mask,
            {{ dbt.listagg('channel', "'|'", 'order by channel') }} as subset_coalition,
            count(*) as subset_size
        from subset_members
        group by conversion_type, coalition, coalition_size, subset_mask
    ) as named
    left join coalition_values
        on named.conversion_type = coalition_values.conversion_type
        and named.subset_coalition = coalition_values.coalition
),

shapley_values as (
    select
        members.conversion_type,
        members.coalition,
        members.channel,
        {{ exact_sum(
            'subset_weights.factorial * rest_weights.factorial / size_weights.factorial
            * (with_channel.subset_value - coalesce(without_channel.subset_value, 0))'
        ) }} as shapley_value
    from subset_members as members
    inner join subsets as with_channel
        on members.conversion_type = with_channel.conversion_type
        and members.coalition = with_channel.coalition
        and members.subset_mask = with_channel.subset_mask
    left join subsets as without_channel
        on members.conversion_type = without_channel.conversion_type
        and members.coalition = without_channel.coalition
        and members.subset_mask - power(2, members.bit) = without_channel.subset_mask
    inner join factorials as subset_weights on with_channel.subset_size - 1 = subset_weights.n
    inner join factorials as rest_weights
        on with_channel.coalition_size - with_channel.subset_size = rest_weights.n
    inner join factorials as size_weights on with_channel.coalition_size = size_weights.n
    group by members.conversion_type, members.coalition, members.channel
),

positive as (
    select
        coalition_members.conversion_type,
        coalition_members.coalition,
        coalition_members.coalition_size,
        coalition_members.channel,
        shapley_values.shapley_value,
        case when shapley_values.shapley_value > 0 then shapley_values.shapley_value else 0 end as positive_value,
        coalition_members.coalition_size > {{ max_channels }} as is_equal_split_fallback
    from coalition_members
    left join shapley_values
        on coalition_members.conversion_type = shapley_values.conversion_type
        and coalition_members.coalition = shapley_values.coalition
        and coalition_members.channel = shapley_values.channel
),

totals as (
    select
        *,
        {{ exact_sum('positive_value', over='partition by conversion_type, coalition') }} as total_positive_value
    from positive
)

select
    conversion_type,
    coalition,
    coalition_size,
    channel,
    shapley_value,
    case
        when is_equal_split_fallback or total_positive_value = 0 then cast(1 as {{ type_double() }}) / coalition_size
        else positive_value / total_positive_value
    end as share,
    is_equal_split_fallback
from totals
