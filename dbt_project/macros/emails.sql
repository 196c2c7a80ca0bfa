{#- A contact is keyed by its normalized email (SPEC §3): trimmed, lower-cased. -#}
{% macro normalize_email(column) -%}
    lower(trim({{ column }}))
{%- endmacro %}

{#- The collector's syntax check (ingestion/forms.py) in portable SQL, for a normalized email: one "@",
    a non-empty local part, a domain of at least two non-empty dot-separated labels, no spaces, at most
    254 characters. Null is not valid. -#}
{% macro is_valid_email(column) -%}
    coalesce(
        {{ column }} like '_%@_%._%'
        and {{ column }} not like '%@%@%'
        and {{ column }} not like '% %'
        and {{ column }} not like '%@.%'
        and {{ column }} not like '%@%..%'
        and {{ column }} not like '%.'
        and {{ dbt.length(column) }} <= 254,
        false
    )
{%- endmacro %}
