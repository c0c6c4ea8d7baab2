{#-
    Sums that come out bit-identical on every build and every engine.

    A parallel `sum`/`avg`/`stddev` over doubles adds in whatever order the threads finish (and a window
    aggregate in an order that depends on where the partition starts), so two builds of the same bronze,
    or an incremental build and a full one, can differ in the last bits. Two remedies:

    - `fixed_order_window_sum`: the sum of an expression over a fixed run of rows before the current one,
      written out as `x + lag(x, 1) + ... + lag(x, n)`, so the additions happen in one order. NULL when any
      of the rows is missing or NULL (the full-window features use it only when the window is full).
    - `exact_sum`: a group sum in DECIMAL (exact, so order-free), returned as a double.
-#}

{% macro fixed_order_window_sum(expression, first_lag, last_lag, window) -%}
    (
    {%- for lag in range(first_lag, last_lag + 1) -%}
        {%- if not loop.first %} + {% endif -%}
        {%- if lag == 0 -%}
            {{ expression }}
        {%- else -%}
            lag({{ expression }}, {{ lag }}) over ({{ window }})
        {%- endif -%}
    {%- endfor -%}
    )
{%- endmacro %}


{#- The sum of squared deviations of the same rows from `center` (a column of the current row). -#}
{% macro fixed_order_window_sum_of_squares(expression, center, first_lag, last_lag, window) -%}
    (
    {%- for lag in range(first_lag, last_lag + 1) -%}
        {%- if not loop.first %} + {% endif -%}
        {%- if lag == 0 -%}
            ({{ expression }} - {{ center }}) * ({{ expression }} - {{ center }})
        {%- else -%}
            (lag({{ expression }}, {{ lag }}) over ({{ window }}) - {{ center }})
            * (lag({{ expression }}, {{ lag }}) over ({{ window }}) - {{ center }})
        {%- endif -%}
    {%- endfor -%}
    )
{%- endmacro %}


{#- sum() in DECIMAL(38, scale): each value is rounded once to `scale` digits, the sum is exact. -#}
{% macro exact_sum(expression, scale=12) -%}
    cast(sum(cast({{ expression }} as decimal(38, {{ scale }}))) as double)
{%- endmacro %}
