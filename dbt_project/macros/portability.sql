{#- The few expressions that no dbt cross-database macro covers. Each dispatches, so another adapter
    needs only its own `<adapter>__<macro>` here (listed in dbt_project/README.md). -#}

{#- The text at `path` inside a JSON column; `path` is a list of keys and list indexes,
    e.g. json_text('data', ['object', 'lines', 'data', 0, 'price', 'product']). -#}
{% macro json_text(column, path) -%}
    {{ return(adapter.dispatch('json_text', 'lifecycle')(column, path)) }}
{%- endmacro %}

{#- SQL:2016 JSON_VALUE (BigQuery, Postgres 17+, Trino, SQL Server, Oracle). -#}
{% macro default__json_text(column, path) -%}
    json_value({{ column }}, '{{ json_path(path) }}')
{%- endmacro %}

{#- DuckDB's json_value returns JSON (a quoted string); json_extract_string returns the text itself. -#}
{% macro duckdb__json_text(column, path) -%}
    json_extract_string({{ column }}, '{{ json_path(path) }}')
{%- endmacro %}

{% macro json_path(path) -%}
    ${%- for step in path -%}
        {%- if step is number -%}[{{ step }}]{%- else -%}.{{ step }}{%- endif -%}
    {%- endfor -%}
{%- endmacro %}

{#- An ISO 8601 text (any offset, e.g. a HubSpot datetime property) as a UTC timestamp; null when the
    text is not a timestamp. -#}
{% macro iso_text_to_timestamp(column) -%}
    {{ return(adapter.dispatch('iso_text_to_timestamp', 'lifecycle')(column)) }}
{%- endmacro %}

{% macro default__iso_text_to_timestamp(column) -%}
    {{ dbt.safe_cast(column, dbt.type_timestamp()) }}
{%- endmacro %}

{#- DuckDB drops the offset when it casts text straight to TIMESTAMP; going through TIMESTAMPTZ applies
    it (the profile pins the session time zone to UTC). -#}
{% macro duckdb__iso_text_to_timestamp(column) -%}
    cast(try_cast({{ column }} as timestamptz) as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- A one-column relation `n` holding the integers 0 .. count - 1 (attribution enumerates channel subsets
    with it). -#}
{% macro integers_below(count) -%}
    {{ return(adapter.dispatch('integers_below', 'lifecycle')(count)) }}
{%- endmacro %}

{#- Postgres, Redshift, Trino and Snowflake (as a table function) spell it generate_series. -#}
{% macro default__integers_below(count) -%}
    select generate_series as n from generate_series(0, {{ count }} - 1)
{%- endmacro %}

{% macro duckdb__integers_below(count) -%}
    select range as n from range({{ count }})
{%- endmacro %}

{#- A double-precision float. dbt's type_float is `float`: double precision in Postgres, Snowflake and
    BigQuery, but single precision in DuckDB (4 bytes, about 7 digits), which would round revenue and
    rates. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'lifecycle')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    {{ dbt.type_float() }}
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}
