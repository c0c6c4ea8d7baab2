{#- Scalar and aggregate functions whose name or arguments differ between DuckDB and Spark. Each macro
    renders one expression; docs/scale-out.md lists them. -#}

{#- A date from an 8-digit `yyyymmdd` string. -#}
{% macro date_from_yyyymmdd(expression) -%}
    {{ return(adapter.dispatch('date_from_yyyymmdd', 'quantmini')(expression)) }}
{%- endmacro %}

{% macro default__date_from_yyyymmdd(expression) -%}
    cast(strptime({{ expression }}, '%Y%m%d') as date)
{%- endmacro %}

{% macro spark__date_from_yyyymmdd(expression) -%}
    to_date({{ expression }}, 'yyyyMMdd')
{%- endmacro %}


{#- The calendar date an instant falls on in a time zone (e.g. America/New_York). -#}
{% macro local_date(instant, time_zone) -%}
    {{ return(adapter.dispatch('local_date', 'quantmini')(instant, time_zone)) }}
{%- endmacro %}

{% macro default__local_date(instant, time_zone) -%}
    cast(timezone('{{ time_zone }}', {{ instant }}) as date)
{%- endmacro %}

{% macro spark__local_date(instant, time_zone) -%}
    to_date(from_utc_timestamp({{ instant }}, '{{ time_zone }}'))
{%- endmacro %}


{#- Number of elements of a list; NULL for a NULL list on both engines. -#}
{% macro list_length(list) -%}
    {{ return(adapter.dispatch('list_length', 'quantmini')(list)) }}
{%- endmacro %}

{% macro default__list_length(list) -%}
    len({{ list }})
{%- endmacro %}

{% macro spark__list_length(list) -%}
    case when {{ list }} is not null then size({{ list }}) end
{%- endmacro %}


{#- A struct value from {field name: expression} (fields in the order given). Structs compare field by
    field on both engines, so one can order max_by/min_by. -#}
{% macro struct_of(fields) -%}
    {{ return(adapter.dispatch('struct_of', 'quantmini')(fields)) }}
{%- endmacro %}

{% macro default__struct_of(fields) -%}
    struct_pack({% for name, expression in fields.items() %}{{ name }} := {{ expression }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro spark__struct_of(fields) -%}
    named_struct({% for name, expression in fields.items() %}'{{ name }}', {{ expression }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}


{#- Product of a double expression over a group, or over a window when `over` (the window
    specification, without the `over` keyword) is given. Both engines fold the collected values left to
    right, in frame order for an ordered window and in ascending order for a group, so every build (and
    both engines) multiply in one order and give the same bits: a parallel product() combines partial
    products in whatever order threads finish. -#}
{% macro product(expression, over=none) -%}
    {{ return(adapter.dispatch('product', 'quantmini')(expression, over)) }}
{%- endmacro %}

{% macro default__product(expression, over) -%}
    {%- set value = 'cast(' ~ expression ~ ' as double)' -%}
    {%- set collected = ('list(' ~ value ~ ') over (' ~ over ~ ')') if over is not none
        else ('list(' ~ value ~ ' order by ' ~ value ~ ')') -%}
    list_reduce(
        list_prepend(cast(1.0 as double), {{ collected }}),
        lambda accumulated, factor: accumulated * factor
    )
{%- endmacro %}

{% macro spark__product(expression, over) -%}
    {%- set value = 'cast(' ~ expression ~ ' as double)' -%}
    {%- set collected = ('collect_list(' ~ value ~ ') over (' ~ over ~ ')') if over is not none
        else ('array_sort(collect_list(' ~ value ~ '))') -%}
    aggregate(
        {{ collected }},
        cast(1.0 as double),
        (accumulated, factor) -> accumulated * factor
    )
{%- endmacro %}


{#- A 64-bit hash of some columns, for change fingerprints compared within one engine only (the two
    engines hash differently). -#}
{% macro row_hash(columns) -%}
    {{ return(adapter.dispatch('row_hash', 'quantmini')(columns)) }}
{%- endmacro %}

{% macro default__row_hash(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__row_hash(columns) -%}
    xxhash64({{ columns | join(', ') }})
{%- endmacro %}


{#- Whole days from one date to a later one (negative when it is earlier). -#}
{% macro days_between(start_date, end_date) -%}
    {{ return(adapter.dispatch('days_between', 'quantmini')(start_date, end_date)) }}
{%- endmacro %}

{% macro default__days_between(start_date, end_date) -%}
    date_diff('day', {{ start_date }}, {{ end_date }})
{%- endmacro %}

{% macro spark__days_between(start_date, end_date) -%}
    datediff({{ end_date }}, {{ start_date }})
{%- endmacro %}


{#- Whole minutes from one instant to a later one. -#}
{% macro minutes_between(start_instant, end_instant) -%}
    {{ return(adapter.dispatch('minutes_between', 'quantmini')(start_instant, end_instant)) }}
{%- endmacro %}

{% macro default__minutes_between(start_instant, end_instant) -%}
    date_diff('minute', {{ start_instant }}, {{ end_instant }})
{%- endmacro %}

{% macro spark__minutes_between(start_instant, end_instant) -%}
    cast((unix_seconds({{ end_instant }}) - unix_seconds({{ start_instant }})) div 60 as bigint)
{%- endmacro %}


{#- When this dbt run started (UTC), as an instant literal: the same value on every row a run writes. -#}
{% macro run_started_instant() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}+00:00' as {{ type_instant() }})
{%- endmacro %}
