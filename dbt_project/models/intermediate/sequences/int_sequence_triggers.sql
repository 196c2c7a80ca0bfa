-- The trigger stream that the sequences (seeds/sequences.csv) enter, exit, pause and resume on
-- (docs/sequences.md#the-sequences-file): one row per lifecycle moment of a contact up to as_of, with the instance key it opens
-- (a booking, a webinar, a purchase...), its anchor time and its params as JSON text. The triggers are
-- made per domain (int_sequence_triggers_forms, _demos, _customers), and every trigger name a sequence may
-- use is listed in _sequences__models.yml. Each row also carries what a targeted sequence's entry filters
-- (the entry_* columns of the file) match: the submission's form and webinar code, the purchase's
-- products, and the contact's segment and audience as tagged at that moment (added here, for all domains).
-- A table: the entries and the exits, pauses and resumes of the instances both read it.
{{ config(materialized='table') }}

with triggers as (
    {% for domain in ['forms', 'demos', 'customers'] -%}
    {% if not loop.first %}union all
    {% endif -%}
    select
        email, trigger_name, occurred_at, instance_key, anchor_at, withdrawn_at, form_id, webinar_code,
        product_ids, params
    from {{ ref('int_sequence_triggers_' ~ domain) }}
    {% endfor %}
),

-- Segment and audience as dim_contacts tags the contact, as of each trigger: forms tag them from the
-- organization type, purchases tag B2C and the product's audience; the latest tag with a known audience
-- wins, `Other` only when no tag has one. A trigger's own submission or purchase
-- counts (it happened at that moment).
tags as (
    select email, segment, coalesce(primary_audience, 'Other') as primary_audience,
        submitted_at as tagged_at, submission_id as tag_id
    from {{ ref('int_form_submissions_tagged') }}
    union all
    select email, 'B2C', coalesce(primary_audience, 'Other'), purchased_at, session_id
    from {{ ref('int_purchases') }}
),

tags_at_moments as (
    select
        moments.email,
        moments.occurred_at,
        tags.segment,
        tags.primary_audience,
        row_number() over (
            partition by moments.email, moments.occurred_at
            order by case when tags.primary_audience = 'Other' then 1 else 0 end, tags.tagged_at desc,
                tags.tag_id desc
        ) as tag_rank
    from (select distinct email, occurred_at from triggers) as moments
    inner join tags on moments.email = tags.email and moments.occurred_at >= tags.tagged_at
)

select
    triggers.email,
    triggers.trigger_name as trigger,
    triggers.occurred_at,
    triggers.instance_key,
    triggers.anchor_at,
    triggers.withdrawn_at,
    triggers.params,
    tags.segment,
    coalesce(tags.primary_audience, 'Other') as primary_audience,
    triggers.form_id,
    triggers.webinar_code,
    triggers.product_ids
from triggers
left join tags_at_moments as tags
    on triggers.email = tags.email and triggers.occurred_at = tags.occurred_at and tags.tag_rank = 1
where triggers.occurred_at <= {{ as_of() }}
    and {{ is_valid_email('triggers.email') }}
