{#- A raw table, or an empty stand-in with its declared columns when dlt has not created it yet.

    dlt creates a table with its first row, so a warehouse can lack some: no webhook ever landed (the
    pipeline must be complete from REST alone, docs/interfaces.md#sandbox), no Stripe event in the last 30 days, a
    system not in use, a landing stream without a bad line. Staging reads every source through this
    macro, so such a table stages as an empty view instead of failing the build; the view is rebuilt
    from the real table on the first run after it appears. The stand-in's columns are the ones declared
    with a `data_type` in the source's yml (declare every column a model reads).

    `source()` is called unconditionally so that the dependency is in the manifest (and in the Dagster
    lineage) either way; a unit test's fixture (a CTE) is passed through. -#}
{% macro source_or_empty(source_name, table_name) -%}
    {%- set declared = source(source_name, table_name) -%}
    {%- if not execute or declared.is_cte -%}
        {{ return(declared) }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(database=declared.database, schema=declared.schema,
                                            identifier=declared.identifier) -%}
    {%- if existing is not none -%}
        {{ return(existing) }}
    {%- endif -%}
    {%- set node = graph.sources['source.' ~ project_name ~ '.' ~ source_name ~ '.' ~ table_name] -%}
    {%- set columns = [] -%}
    {%- for column in node.columns.values() -%}
        {%- if not column.data_type -%}
            {{ exceptions.raise_compiler_error("source " ~ source_name ~ "." ~ table_name ~ ": column "
                ~ column.name ~ " needs a data_type (it stands in for the table while dlt has not created it)") }}
        {%- endif -%}
        {%- do columns.append('cast(null as ' ~ column.data_type ~ ') as ' ~ adapter.quote(column.name)) -%}
    {%- endfor -%}
    {{ return('(select ' ~ columns | join(', ') ~ ' where 1 = 0) as ' ~ adapter.quote(table_name)) }}
{%- endmacro %}
