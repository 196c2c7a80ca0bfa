{#- The sum of a floating-point expression that does not depend on the order rows arrive in. Summing floats
    in a different order changes the last bits, and a parallel join or aggregate hands rows over in any
    order, so two builds of the same data could differ. Each term is rounded to `scale` decimals and summed
    as an exact decimal; the total goes back to a float. `over`: a window to sum over (`partition by ...`),
    or none for an aggregate. -#}
{% macro exact_sum(expression, over=none, scale=12) -%}
    cast(
        sum(cast({{ expression }} as decimal(38, {{ scale }})))
        {%- if over is not none %} over ({{ over }}){% endif %}
        as {{ type_double() }}
    )
{%- endmacro %}
