-- Every conversion is credited exactly once under every attribution model: its credits sum to 1 (within
-- floating point), so no conversion and no revenue is lost or counted twice. Returns the offenders.
with models as (
    select distinct attribution_model from {{ ref('fct_attribution_credits') }}
),

sums as (
    select attribution_model, conversion_id, sum(credit) as total_credit
    from {{ ref('fct_attribution_credits') }}
    group by attribution_model, conversion_id
)

select conversions.conversion_id, models.attribution_model, sums.total_credit
from {{ ref('fct_conversions') }} as conversions
cross join models
left join sums
    on conversions.conversion_id = sums.conversion_id and models.attribution_model = sums.attribution_model
where sums.total_credit is null or abs(sums.total_credit - 1) > 0.000001
