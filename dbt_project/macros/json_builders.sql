{#- JSON text built in SQL, for the params of the lifecycle emails (docs/sequences.md#params-of-every-send). Values are escaped by a
    dispatched macro; the rest is string concatenation through dbt's cross-database macros. -#}

{#- A JSON object from `members`, a list of (key, SQL expression, type); type is one of
    string | number | boolean | timestamp (ISO 8601 UTC text ending in Z) | json (already JSON text).
    Keys are written as given (plain names); a null value is written as null. -#}
{% macro json_object_text(members) -%}
    {%- set parts = ["'{'"] -%}
    {%- for key, expression, type in members -%}
        {%- do parts.append("'" ~ (',' if not loop.first else '') ~ '"' ~ key ~ '":' ~ "'") -%}
        {%- do parts.append(json_value_text(expression, type)) -%}
    {%- endfor -%}
    {%- do parts.append("'}'") -%}
    {{ dbt.concat(parts) }}
{%- endmacro %}

{% macro json_value_text(expression, type) -%}
    {%- if type == 'string' -%}
        {{ json_string_text(expression) }}
    {%- elif type == 'number' -%}
        coalesce({{ dbt.cast(expression, dbt.type_string()) }}, 'null')
    {%- elif type == 'boolean' -%}
        case when {{ expression }} then 'true' when not ({{ expression }}) then 'false' else 'null' end
    {%- elif type == 'timestamp' -%}
        {{ json_string_text(iso_utc_text(expression)) }}
    {%- elif type == 'json' -%}
        coalesce({{ expression }}, 'null')
    {%- else -%}
        {{ exceptions.raise_compiler_error("json_object_text: unknown type '" ~ type ~ "'") }}
    {%- endif -%}
{%- endmacro %}

{#- A text value as a JSON string literal (quoted and escaped), or null as the text 'null'. -#}
{% macro json_string_text(expression) -%}
    {{ return(adapter.dispatch('json_string_text', 'lifecycle')(expression)) }}
{%- endmacro %}

{#- Standard SQL string literals (Postgres, DuckDB): a backslash is itself. Escapes \, ", newline,
    carriage return and tab; adapters whose literals read backslash escapes (BigQuery, Snowflake) need
    their own version. -#}
{% macro default__json_string_text(expression) -%}
    {#- a namespace: a plain `set` inside a loop would not outlive the iteration -#}
    {%- set escaped = namespace(sql=dbt.cast(expression, dbt.type_string())) -%}
    {%- for raw, replacement in [('\\', '\\\\'), ('"', '\\"'), ('\n', '\\n'), ('\r', '\\r'), ('\t', '\\t')] -%}
        {%- set escaped.sql = dbt.replace(escaped.sql, "'" ~ raw ~ "'", "'" ~ replacement ~ "'") -%}
    {%- endfor -%}
    coalesce({{ dbt.concat(["'\"'", escaped.sql, "'\"'"]) }}, 'null')
{%- endmacro %}

{#- DuckDB's to_json escapes every control character. -#}
{% macro duckdb__json_string_text(expression) -%}
    coalesce(cast(to_json({{ dbt.cast(expression, dbt.type_string()) }}) as {{ dbt.type_string() }}), 'null')
{%- endmacro %}

{#- The members of a JSON object text without its braces ('{"a":1}' -> '"a":1'); '' for '{}'. -#}
{% macro json_object_members(expression) -%}
    {{ return(adapter.dispatch('json_object_members', 'lifecycle')(expression)) }}
{%- endmacro %}

{% macro default__json_object_members(expression) -%}
    substring({{ expression }} from 2 for {{ dbt.length(expression) }} - 2)
{%- endmacro %}

{#- A UTC timestamp as ISO 8601 text ending in Z: '2026-08-20T17:00:00Z' (fractions kept when present). -#}
{% macro iso_utc_text(expression) -%}
    {{ dbt.concat([dbt.replace(dbt.cast(expression, dbt.type_string()), "' '", "'T'"), "'Z'"]) }}
{%- endmacro %}
