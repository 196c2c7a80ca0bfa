{#- Helpers for the links in lifecycle emails (webinar calendar and survey links, docs/webinars.md#confirmation-and-links). -#}

{#- A text percent-encoded for a URL query value (RFC 3986: everything but letters, digits and -._~). -#}
{% macro url_encode(expression) -%}
    {{ return(adapter.dispatch('url_encode', 'lifecycle')(expression)) }}
{%- endmacro %}

{#- Replaces each reserved ASCII character and tab, newline and carriage return, `%` first. Other
    control characters and non-ASCII ones pass unencoded (their UTF-8 bytes would need a byte-level
    function); adapters that have one should dispatch to it. -#}
{% macro default__url_encode(expression) -%}
    {%- set reserved = [('%', '%25'), (' ', '%20'), ('!', '%21'), ('"', '%22'), ('#', '%23'), ('$', '%24'),
                        ('&', '%26'), ('\'', '%27'), ('(', '%28'), (')', '%29'), ('*', '%2A'), ('+', '%2B'),
                        (',', '%2C'), ('/', '%2F'), (':', '%3A'), (';', '%3B'), ('<', '%3C'), ('=', '%3D'),
                        ('>', '%3E'), ('?', '%3F'), ('@', '%40'), ('[', '%5B'), ('\\', '%5C'), (']', '%5D'),
                        ('^', '%5E'), ('`', '%60'), ('{', '%7B'), ('|', '%7C'), ('}', '%7D'), ('\t', '%09'),
                        ('\n', '%0A'), ('\r', '%0D')] -%}
    {#- a namespace: a plain `set` inside a loop would not outlive the iteration -#}
    {%- set encoded = namespace(sql=dbt.cast(expression, dbt.type_string())) -%}
    {%- for character, code in reserved -%}
        {%- set encoded.sql = dbt.replace(encoded.sql, "'" ~ dbt.escape_single_quotes(character) ~ "'", "'" ~ code ~ "'") -%}
    {%- endfor -%}
    {{ encoded.sql }}
{%- endmacro %}

{#- DuckDB's url_encode also encodes non-ASCII characters (as UTF-8 bytes). -#}
{% macro duckdb__url_encode(expression) -%}
    url_encode({{ dbt.cast(expression, dbt.type_string()) }})
{%- endmacro %}

{#- A UTC timestamp as the wall-clock time of an IANA time zone (`AT TIME ZONE`: Postgres, DuckDB,
    Trino; Snowflake needs convert_timezone). -#}
{% macro utc_to_local(expression, time_zone) -%}
    {{ return(adapter.dispatch('utc_to_local', 'lifecycle')(expression, time_zone)) }}
{%- endmacro %}

{% macro default__utc_to_local(expression, time_zone) -%}
    cast(({{ expression }} at time zone 'UTC') at time zone {{ time_zone }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- A timestamp as 'MM/DD/YYYY HH:MM' (24 h), the date format AddEvent links read by default. -#}
{% macro us_date_time_text(expression) -%}
    {%- set text = dbt.cast(expression, dbt.type_string()) -%}
    {%- set day = dbt.split_part(text, "' '", 1) -%}
    {%- set time = dbt.split_part(text, "' '", 2) -%}
    {{ dbt.concat([
        dbt.split_part(day, "'-'", 2), "'/'", dbt.split_part(day, "'-'", 3), "'/'", dbt.split_part(day, "'-'", 1),
        "' '", dbt.split_part(time, "':'", 1), "':'", dbt.split_part(time, "':'", 2)]) }}
{%- endmacro %}
