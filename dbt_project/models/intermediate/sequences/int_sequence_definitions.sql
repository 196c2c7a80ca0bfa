-- One row per sequence of seeds/sequences.csv: the settings that every step row repeats, checked for
-- agreement (a sequence whose rows disagree appears twice and fails the unique test) and for
-- completeness (`is_valid`, with the `problems` found), with its step count and schedule span.
with steps as (
    select * from {{ ref('sequences') }}
),

definitions as (
    select
        sequence,
        kind,
        entry_trigger,
        entry_audiences,
        entry_segments,
        entry_products,
        entry_webinar_codes,
        entry_forms,
        exit_triggers,
        exit_scope,
        pause_triggers,
        resume_triggers,
        resume_delay_days,
        merge_policy,
        merge_param,
        reentry_policy,
        reentry_after_days,
        list_name,
        count(*) as step_count,
        min(step) as first_step,
        max(step) as last_step,
        max(offset_days * 24 + offset_hours) as last_offset_hours
    from steps
    group by
        sequence, kind, entry_trigger, entry_audiences, entry_segments, entry_products, entry_webinar_codes,
        entry_forms, exit_triggers, exit_scope, pause_triggers, resume_triggers, resume_delay_days,
        merge_policy, merge_param, reentry_policy, reentry_after_days, list_name
),

-- The entry filters that are set, one row each, with whether the sequence's entry trigger carries what
-- the filter matches (int_sequence_triggers): every trigger has the contact's audience and segment; only
-- a purchase has products; a webinar registration and a submission of the webinar form (or any form)
-- have a webinar code; only `any_form` leaves the form open.
entry_filters as (
    select sequence, entry_trigger, 'entry_audiences' as filter_column, 'audience' as value_kind,
        entry_audiences as filter_list, true as applies
    from definitions
    union all
    select sequence, entry_trigger, 'entry_segments', 'segment', entry_segments, true
    from definitions
    union all
    select sequence, entry_trigger, 'entry_products', 'product', entry_products, entry_trigger = 'purchase'
    from definitions
    union all
    select sequence, entry_trigger, 'entry_webinar_codes', 'webinar_code', entry_webinar_codes,
        entry_trigger in ('webinar_registration', 'form_webinar', 'any_form')
    from definitions
    union all
    select sequence, entry_trigger, 'entry_forms', 'form', entry_forms, entry_trigger = 'any_form'
    from definitions
),

-- every value a filter can match: what the seeds and the tagging rules can give a trigger
known_values as (
    select 'audience' as value_kind, primary_audience as filter_value from {{ ref('org_types') }}
    union
    select 'audience', primary_audience from {{ ref('products') }}
    union
    select 'audience', 'Other'
    union
    select 'segment', segment from {{ ref('org_types') }}
    union
    select 'segment', 'B2C'
    union
    select 'product', product_id from {{ ref('products') }}
    union
    select 'webinar_code', webinar_code from {{ ref('webinars') }}
    union
    select 'form', form_id from {{ ref('forms') }}
),

-- a list holds (number of `|` + 1) values; each must be a known one, once
filter_checks as (
    select
        filters.sequence,
        filters.entry_trigger,
        filters.filter_column,
        filters.filter_list,
        filters.applies,
        {{ dbt.length('filters.filter_list') }}
            - {{ dbt.length(dbt.replace('filters.filter_list', "'|'", "''")) }} + 1 as value_count,
        count(known_values.filter_value) as known_count
    from entry_filters as filters
    left join known_values
        on filters.value_kind = known_values.value_kind
        and {{ in_pipe_list('known_values.filter_value', 'filters.filter_list') }}
    where filters.filter_list <> ''
    group by filters.sequence, filters.entry_trigger, filters.filter_column, filters.filter_list, filters.applies
),

problems as (
    select sequence, 'pause_triggers and resume_triggers come together' as problem
    from definitions
    where (nullif(pause_triggers, '') is null) <> (nullif(resume_triggers, '') is null)
    union all
    select sequence, 'merge needs a merge_param'
    from definitions
    where merge_policy = 'merge' and nullif(merge_param, '') is null
    union all
    select sequence, 'steps are not numbered 1..n'
    from definitions
    where first_step <> 1 or last_step <> step_count
    union all
    select sequence, {{ dbt.concat(['filter_column', "' does not apply to entry trigger '", 'entry_trigger']) }}
    from filter_checks
    where not applies
    union all
    select sequence, {{ dbt.concat(['filter_column', "' holds a value no seed knows (or one twice): '",
                                    'filter_list']) }}
    from filter_checks
    where known_count <> value_count
),

sequence_problems as (
    select sequence, {{ dbt.listagg('problem', "'; '", 'order by problem') }} as problems
    from problems
    group by sequence
)

select
    definitions.*,
    sequence_problems.problems,
    sequence_problems.sequence is null as is_valid
from definitions
left join sequence_problems on definitions.sequence = sequence_problems.sequence
