{#- A contact is keyed by its normalized email: trimmed, lower-cased. -#}
{% macro normalize_email(column) -%}
    lower(trim({{ column }}))
{%- endmacro %}

{#- The collector's and the backfill's syntax check (ingestion/forms.py `is_valid_email`), for a normalized
    email: a dot-atom local part of at most 64 characters, one "@", a domain of at least two labels ending in
    an alphabetic or IDN (xn--) top-level domain, at most 254 characters in all. The pattern is the Python
    one (no look-arounds, so every engine's regex dialect runs it). Null is not valid. -#}
{% macro is_valid_email(column) -%}
    coalesce(
        {{ regex_full_match(column, "[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{0,58}[a-z0-9])") }}
        and {{ dbt.length(dbt.split_part(column, "'@'", 1)) }} <= 64
        and {{ dbt.length(column) }} <= 254,
        false
    )
{%- endmacro %}

{#- Whether the whole of `column` matches the regular expression `pattern` (a Jinja string), in each
    warehouse's own dialect. -#}
{% macro regex_full_match(column, pattern) -%}
    {{ return(adapter.dispatch('regex_full_match')(column, pattern)) }}
{%- endmacro %}

{% macro default__regex_full_match(column, pattern) -%}
    {{ column }} ~ '^(?:{{ pattern | replace("'", "''") }})$'
{%- endmacro %}

{% macro duckdb__regex_full_match(column, pattern) -%}
    regexp_full_match({{ column }}, '{{ pattern | replace("'", "''") }}')
{%- endmacro %}

{% macro snowflake__regex_full_match(column, pattern) -%}
    regexp_like({{ column }}, '{{ pattern | replace("\\", "\\\\") | replace("'", "\\'") }}')
{%- endmacro %}

{% macro bigquery__regex_full_match(column, pattern) -%}
    regexp_contains({{ column }}, r"^(?:{{ pattern }})$")
{%- endmacro %}
