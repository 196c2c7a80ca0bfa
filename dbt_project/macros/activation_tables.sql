{#- The tables the activations write and dbt reads (SPEC §4.8), created empty when missing so that dbt
    can run before the first activation (and the views on the run records, sync_runs and sync_log, are
    built on the real tables). Called by the on-run-start hooks in dbt_project.yml; the
    activations create them the same way, whichever runs first (activations/state.py: same columns, and it
    adds sync_state.payload, the accepted payload as JSON text, to a table created before that column).
    send_ledger.status is `sending` from just before the provider is called until its answer (or a
    look-up in its event log) confirms the email, then `sent`; `withdrawn` (with its `reason`) when the
    provider never got it and the rules no longer allow it; send_ledger.send_tag is the tag of the batch
    call that last carried it (activations/sends.py; activations/state.py adds the columns a ledger
    created by an older version lacks). -#}
{% macro activation_table_columns() -%}
    {{ return({
        'send_ledger': [
            ('message_key', dbt.type_string()),
            ('email', dbt.type_string()),
            ('sequence', dbt.type_string()),
            ('step', dbt.type_int()),
            ('status', dbt.type_string()),
            ('sent_at', dbt.type_timestamp()),
            ('provider_message_id', dbt.type_string()),
            ('send_tag', dbt.type_string()),
            ('reason', dbt.type_string()),
        ],
        'sync_state': [
            ('destination', dbt.type_string()),
            ('object', dbt.type_string()),
            ('key', dbt.type_string()),
            ('payload_hash', dbt.type_string()),
            ('synced_at', dbt.type_timestamp()),
            ('payload', dbt.type_string()),
        ],
        'sync_runs': [
            ('run_id', dbt.type_string()),
            ('destination', dbt.type_string()),
            ('object', dbt.type_string()),
            ('started_at', dbt.type_timestamp()),
            ('finished_at', dbt.type_timestamp()),
            ('dry_run', dbt.type_boolean()),
            ('considered', dbt.type_bigint()),
            ('changed', dbt.type_bigint()),
            ('sent', dbt.type_bigint()),
            ('rejected', dbt.type_bigint()),
            ('api_calls', dbt.type_string()),
            ('status', dbt.type_string()),
            ('error', dbt.type_string()),
            ('as_of', dbt.type_timestamp()),
        ],
        'sync_log': [
            ('run_id', dbt.type_string()),
            ('destination', dbt.type_string()),
            ('object', dbt.type_string()),
            ('key', dbt.type_string()),
            ('action', dbt.type_string()),
            ('outcome', dbt.type_string()),
            ('reason', dbt.type_string()),
            ('fields', dbt.type_string()),
            ('at', dbt.type_timestamp()),
        ],
    }) }}
{%- endmacro %}

{% macro create_activations_schema() -%}
    create schema if not exists {{ adapter.quote('activations') }}
{%- endmacro %}

{% macro create_activation_table(name) -%}
    create table if not exists {{ adapter.quote('activations') }}.{{ adapter.quote(name) }} (
    {%- for column, type in activation_table_columns()[name] %}
        {{ adapter.quote(column) }} {{ type }}{{ "," if not loop.last }}
    {%- endfor %}
    )
{%- endmacro %}
