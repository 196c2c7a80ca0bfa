{#- Every model timestamp is UTC without a time zone. dlt stores timestamps with one; the cast uses the
    session time zone, which the profile pins to UTC. -#}
{% macro utc_timestamp(column) -%}
    cast({{ column }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- Unix seconds (Stripe's `created`, `period_end`, ...) as a UTC timestamp. -#}
{% macro epoch_seconds_to_timestamp(column) -%}
    {{ dbt.dateadd('second', column, "cast('1970-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}
