-- The triggers a form submission makes (docs/sequences.md#the-sequences-file): `form_<form_id>` and
-- `any_form` for every submission, and `webinar_registration` for each registration with the links its
-- emails carry (docs/webinars.md#confirmation-and-links). int_sequence_triggers unions it with the other
-- domains and adds the contact's tags; the columns are that model's, in its order.
with submissions as (
    select * from {{ ref('int_form_submissions_tagged') }}
),

webinar_registrations as (
    select
        *,
        {{ utc_to_local('starts_at', 'time_zone') }} as starts_at_local,
        {{ utc_to_local('ends_at', 'time_zone') }} as ends_at_local
    from {{ ref('int_webinar_registrations_deduplicated') }}
),

-- the two names a submission triggers under (below)
form_name_kinds as (
    select true as is_own_form
    union all
    select false as is_own_form
)

-- every submission is `form_<form_id>` and `any_form` (a sequence entering on any_form names its forms
-- in entry_forms)
select
    submissions.email,
    case
        when form_names.is_own_form then {{ dbt.concat(["'form_'", 'submissions.form_id']) }}
        else 'any_form'
    end as trigger_name,
    submissions.submitted_at as occurred_at,
    submissions.submission_id as instance_key,
    cast(null as {{ dbt.type_timestamp() }}) as anchor_at,
    cast(null as {{ dbt.type_timestamp() }}) as withdrawn_at,
    submissions.form_id,
    submissions.webinar_code,
    cast(null as {{ dbt.type_string() }}) as product_ids,
    {{ json_object_text([
        ('form_id', 'form_id', 'string'),
        ('first_name', 'first_name', 'string'),
        ('last_name', 'last_name', 'string'),
        ('organization', 'organization', 'string'),
        ('segment', 'segment', 'string'),
        ('primary_audience', 'primary_audience', 'string'),
        ('submitted_at', 'submitted_at', 'timestamp'),
    ]) }} as params
from submissions
cross join form_name_kinds as form_names

union all
select
    email,
    'webinar_registration',
    registered_at,
    webinar_code as instance_key,
    starts_at,
    null,
    'webinar',
    webinar_code,
    null,
    {{ json_object_text([
        ('webinar_code', 'webinar_code', 'string'),
        ('webinar_title', 'webinar_title', 'string'),
        ('starts_at', 'starts_at', 'timestamp'),
        ('zoom_url', 'zoom_url', 'string'),
        ('calendar_url', dbt.concat([
            "'https://www.addevent.com/dir/?title='", url_encode('webinar_title'),
            "'&start='", url_encode(us_date_time_text('starts_at_local')),
            "'&end='", url_encode(us_date_time_text('ends_at_local')),
            "'&timezone='", url_encode('time_zone'),
            "'&location='", url_encode('zoom_url'),
            "'&description='", url_encode(dbt.concat(["'Join on Zoom: '", 'zoom_url'])),
        ]), 'string'),
        ('survey_url', dbt.concat([
            'survey_base_url',
            "case when survey_base_url like '%?%' then '&' else '?' end",
            "'email='", url_encode('email'),
            "'&phone='", url_encode("coalesce(phone, '')"),
        ]), 'string'),
    ]) }}
from webinar_registrations
