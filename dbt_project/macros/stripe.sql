{#- The fields later models need from a Stripe event's `data` JSON, shared by the webhook and the API
    copy so that both stage to the same columns. `data.object` is a checkout.session, charge, invoice or
    subscription; a field that its type lacks is null. -#}
{% macro stripe_event_data_columns(data='data') -%}
    {%- set object_type = json_text(data, ['object', 'object']) -%}
    {%- set object_id = json_text(data, ['object', 'id']) -%}
    {%- set email_raw -%}
        coalesce(
            {{ json_text(data, ['object', 'customer_details', 'email']) }},
            {{ json_text(data, ['object', 'customer_email']) }},
            {{ json_text(data, ['object', 'billing_details', 'email']) }},
            {{ json_text(data, ['object', 'receipt_email']) }}
        )
    {%- endset -%}
    {{ object_type }} as object_type,
    {{ object_id }} as object_id,
    {{ json_text(data, ['object', 'customer']) }} as customer_id,
    {{ email_raw }} as email_raw,
    {{ normalize_email(email_raw) }} as email,
    {{ is_valid_email(normalize_email(email_raw)) }} as is_valid_email,
    coalesce(
        {{ json_text(data, ['object', 'customer_details', 'name']) }},
        {{ json_text(data, ['object', 'customer_name']) }},
        {{ json_text(data, ['object', 'billing_details', 'name']) }}
    ) as customer_name,
    case
        when {{ object_type }} = 'checkout.session' then {{ object_id }}
        else {{ json_text(data, ['object', 'metadata', 'checkout_session']) }}
    end as session_id,
    {{ json_text(data, ['object', 'mode']) }} as checkout_mode,
    {{ json_text(data, ['object', 'status']) }} as object_status,
    {{ json_text(data, ['object', 'payment_status']) }} as payment_status,
    {{ dbt.safe_cast(
        "case " ~ object_type ~ " when 'checkout.session' then " ~ json_text(data, ['object', 'amount_total'])
        ~ " when 'invoice' then " ~ json_text(data, ['object', 'amount_due'])
        ~ " when 'charge' then " ~ json_text(data, ['object', 'amount']) ~ " end",
        dbt.type_bigint()) }} as amount,
    {{ dbt.safe_cast(json_text(data, ['object', 'amount_paid']), dbt.type_bigint()) }} as amount_paid,
    {{ dbt.safe_cast(json_text(data, ['object', 'amount_refunded']), dbt.type_bigint()) }} as amount_refunded,
    {{ json_text(data, ['object', 'currency']) }} as currency,
    {{ json_text(data, ['object', 'payment_intent']) }} as payment_intent_id,
    {{ json_text(data, ['object', 'client_reference_id']) }} as client_reference_id,
    {{ json_text(data, ['object', 'metadata', 'utm_source']) }} as utm_source,
    {{ json_text(data, ['object', 'metadata', 'utm_medium']) }} as utm_medium,
    {{ json_text(data, ['object', 'metadata', 'utm_campaign']) }} as utm_campaign,
    {{ json_text(data, ['object', 'metadata', 'utm_content']) }} as utm_content,
    {{ json_text(data, ['object', 'metadata', 'utm_term']) }} as utm_term,
    {{ json_text(data, ['object', 'billing_reason']) }} as billing_reason,
    -- basil (2025-03-31) moved an invoice's subscription under parent.subscription_details
    case
        when {{ object_type }} = 'subscription' then {{ object_id }}
        else coalesce(
            {{ json_text(data, ['object', 'parent', 'subscription_details', 'subscription']) }},
            {{ json_text(data, ['object', 'subscription']) }}
        )
    end as subscription_id,
    coalesce(
        {{ json_text(data, ['object', 'items', 'data', 0, 'price', 'product']) }},
        {{ json_text(data, ['object', 'lines', 'data', 0, 'pricing', 'price_details', 'product']) }},
        {{ json_text(data, ['object', 'lines', 'data', 0, 'price', 'product']) }}
    ) as product_id,
    {{ epoch_seconds_to_timestamp(dbt.safe_cast(
        "coalesce(" ~ json_text(data, ['object', 'period_start']) ~ ", "
        ~ json_text(data, ['object', 'items', 'data', 0, 'current_period_start']) ~ ", "
        ~ json_text(data, ['object', 'current_period_start']) ~ ")", dbt.type_bigint())) }} as period_start_at,
    {{ epoch_seconds_to_timestamp(dbt.safe_cast(
        "coalesce(" ~ json_text(data, ['object', 'period_end']) ~ ", "
        ~ json_text(data, ['object', 'items', 'data', 0, 'current_period_end']) ~ ", "
        ~ json_text(data, ['object', 'current_period_end']) ~ ")", dbt.type_bigint())) }} as period_end_at,
    {{ epoch_seconds_to_timestamp(dbt.safe_cast(json_text(data, ['object', 'canceled_at']), dbt.type_bigint())) }} as canceled_at,
    {{ json_text(data, ['object', 'cancellation_details', 'reason']) }} as cancellation_reason
{%- endmacro %}

{#- A Stripe amount (integer minor units) in the currency's major units: cents to dollars, yen stay yen.
    The zero-decimal currencies are Stripe's list. -#}
{% macro stripe_major_units(amount, currency) -%}
    case
        when lower({{ currency }}) in (
            'bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf'
        ) then cast({{ amount }} as {{ dbt.type_numeric() }})
        else cast({{ amount }} as {{ dbt.type_numeric() }}) / 100
    end
{%- endmacro %}
