{#- The `|`-separated lists of seeds/sequences.csv (triggers, entry filters) against the trigger stream. -#}

{#- Whether `value` is one of `list`, portably: the position of '|value|' in '|list|'. Null for a null
    value or list (a `where` leaves the row out). An empty list holds nothing: a caller that reads empty as
    "no restriction" says so apart. -#}
{% macro in_pipe_list(value, list) -%}
    {{ dbt.position(dbt.concat(["'|'", value, "'|'"]), dbt.concat(["'|'", list, "'|'"])) }} > 0
{%- endmacro %}

{#- Whether two lists share a value (a purchase's products and a sequence's entry_products), in each
    warehouse's own dialect: Postgres arrays by default. Null when either list is null. -#}
{% macro pipe_lists_overlap(left, right) -%}
    {{ return(adapter.dispatch('pipe_lists_overlap', 'lifecycle')(left, right)) }}
{%- endmacro %}

{% macro default__pipe_lists_overlap(left, right) -%}
    string_to_array({{ left }}, '|') && string_to_array({{ right }}, '|')
{%- endmacro %}

{% macro duckdb__pipe_lists_overlap(left, right) -%}
    list_has_any(string_split({{ left }}, '|'), string_split({{ right }}, '|'))
{%- endmacro %}
