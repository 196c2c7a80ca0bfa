-- Every touch up to as_of, one row each (docs/contacts-and-touches.md#touch-source, docs/field-names.md): what fct_campaign_attribution and analysts
-- count from. Source rule and tie-breaking: int_touches_ranked.
select
    touch_id,
    email,
    occurred_at,
    touch_type,
    form_id,
    source_record_id,
    source_basis,
    source,
    medium,
    campaign,
    {{ dbt.concat(['source', "' / '", "coalesce(medium, '(none)')"]) }} as channel,
    content,
    term,
    referrer,
    touch_number,
    touch_number = 1 as is_original_touch,
    is_latest_touch
from {{ ref('int_touches_ranked') }}
