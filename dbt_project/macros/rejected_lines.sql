{#- Lines of a landing stream that could not be read (ingestion.sources.read_landing), as data-quality
    rows of dq_flagged_records. dlt creates `<source>.rejected_lines` only once a bad line was landed;
    until then source_or_empty gives no rows. -#}
{% macro rejected_landing_lines(source_name, system) -%}
    select
        cast('{{ system }}' as {{ dbt.type_string() }}) as source,
        cast('landing_line' as {{ dbt.type_string() }}) as record_type,
        {{ dbt.concat(['landing_file', "':'", dbt.cast('landing_line', dbt.type_string())]) }} as record_id,
        cast(null as {{ dbt.type_string() }}) as email_raw,
        cast('rejected_landing_line' as {{ dbt.type_string() }}) as reason,
        cast(error as {{ dbt.type_string() }}) as detail,
        cast(null as {{ dbt.type_timestamp() }}) as occurred_at
    from {{ source_or_empty(source_name, 'rejected_lines') }}
{%- endmacro %}
