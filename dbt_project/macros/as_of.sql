{#- Time travel (docs/architecture.md): the moment a run looks at, as a UTC timestamp literal.

    The `as_of` var takes an ISO 8601 timestamp ("2026-09-01T00:00:00Z", any offset; no offset means
    UTC); without it, the environment variable LIFECYCLE_AS_OF does (what orchestration sets: a changed
    `--vars` makes dbt parse the whole project again, about 10 s, a changed variable only the files that
    use it). When both are empty, the run's start time is used, so every model of one run sees the same "now".
    The value is rendered into the SQL at build time: a view built by a run keeps that run's as_of.
    Intermediate models keep `occurred_at <= as_of()`; staging models never filter. -#}
{% macro as_of() -%}
    cast('{{ as_of_utc_text() }}' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- The as_of moment as 'YYYY-MM-DD HH:MM:SS[.ffffff]', UTC, without an offset (every adapter reads it). -#}
{% macro as_of_utc_text() -%}
    {%- set value = var('as_of', none) -%}
    {%- if value is none or (value is string and value | trim == '') -%}
        {%- set value = env_var('LIFECYCLE_AS_OF', '') -%}
    {%- endif -%}
    {%- set iso_8601 = '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?)?(Z|z|[+-][0-9]{2}:?[0-9]{2})?' -%}
    {%- if value is none or (value is string and value | trim == '') -%}
        {%- set moment = run_started_at -%}
    {%- elif value is string -%}
        {%- if not modules.re.fullmatch(iso_8601, value | trim) -%}
            {{ exceptions.raise_compiler_error("var as_of must be an ISO 8601 timestamp such as 2026-09-01T00:00:00Z, got '" ~ value ~ "'") }}
        {%- endif -%}
        {%- set moment = modules.datetime.datetime.fromisoformat(value | trim) -%}
    {%- elif value.hour is defined -%}
        {#- `--vars` is YAML: an unquoted timestamp arrives as a datetime -#}
        {%- set moment = value -%}
    {%- elif value.year is defined -%}
        {%- set moment = modules.datetime.datetime(value.year, value.month, value.day) -%}
    {%- else -%}
        {{ exceptions.raise_compiler_error("var as_of must be an ISO 8601 timestamp such as 2026-09-01T00:00:00Z, got '" ~ value ~ "'") }}
    {%- endif -%}
    {%- if moment.tzinfo is not none -%}
        {%- set moment = moment.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
    {%- endif -%}
    {{- moment.isoformat(' ') -}}
{%- endmacro %}
