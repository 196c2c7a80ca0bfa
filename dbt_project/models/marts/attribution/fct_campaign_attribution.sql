-- Conversions and revenue per campaign (source / medium / campaign) and month, under each attribution
-- model side by side: fct_attribution_credits summed, exactly (exact_sum: every build gives the same
-- sums, whatever order the rows arrive in). Counts are fractional credits (a lead shared by two campaigns
-- counts half in each). Revenue stays in the purchase's currency: a campaign with revenue in two
-- currencies has a row for each, and the counts of conversions without revenue sit on its row whose
-- currency is null, so every sum over rows is right.
select
    attribution_model,
    conversion_month,
    source,
    medium,
    campaign,
    currency,
    {{ exact_sum("case when conversion_type = 'lead_created' then credit else 0 end") }} as leads,
    {{ exact_sum("case when conversion_type = 'demo_booked' then credit else 0 end") }} as demos_booked,
    {{ exact_sum("case when conversion_type = 'demo_completed' then credit else 0 end") }} as demos_completed,
    {{ exact_sum("case when conversion_type = 'became_client' then credit else 0 end") }} as customers_won,
    {{ exact_sum("case when conversion_type = 'purchase' then credit else 0 end") }} as purchases,
    {{ exact_sum("case when conversion_type = 'purchase' then value_credit else 0 end") }} as revenue
from {{ ref('fct_attribution_credits') }}
group by attribution_model, conversion_month, source, medium, campaign, currency
