{#-
    Incremental models keyed by (ticker, session) whose rows depend on a ticker's earlier sessions (an
    adjustment factor, a rolling window) rewrite each changed ticker from its first changed session on:
    every stored row of the ticker from `rewritten_from_date` is deleted and the new rows inserted, so
    a row that vanished upstream vanishes here too. The model computes, per ticker, the date it must be
    rewritten from; what changed is found from the inputs' `built_at` stamps, never by comparing all
    stored history (docs/silver.md, "Incremental").

    `built_at` is the start of the dbt invocation that wrote a row (`run_started_instant()`): rows an upstream model wrote
    after
    this model's last build carry a later stamp than any row stored here.
-#}

{#- The newest stamp stored in the model being built: upstream rows stamped later are new to it (all of
    them when the stored table predates the column). -#}
{% macro stored_built_at() -%}
    {%- set earliest = "cast('0001-01-01 00:00:00' as " ~ type_instant() ~ ")" -%}
    {%- if execute -%}
        {%- set stored = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
        {%- if 'built_at' not in stored -%}
            {#- a table written before the column existed: every upstream row is new to it -#}
            {{ return(earliest) }}
        {%- endif -%}
    {%- endif -%}
    {{ return('(select coalesce(max(built_at), ' ~ earliest ~ ') from ' ~ this ~ ')') }}
{%- endmacro %}


{#- DuckDB's `ticker_rewrite` incremental strategy. The model's rows carry `rewritten_from_date`; rows
    with a NULL `session_date` are markers for tickers that have nothing left to insert (every row of
    theirs from that date vanished). -#}
{% macro get_incremental_ticker_rewrite_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} as stored
    using (
        select
            ticker,
            min(rewritten_from_date) as rewritten_from_date
        from {{ source }}
        group by ticker
    ) as rewritten
    where stored.ticker = rewritten.ticker and stored.session_date >= rewritten.rewritten_from_date;

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }} where session_date is not null
{%- endmacro %}


{#- The incremental strategy of a ticker-rewrite model: `ticker_rewrite` on DuckDB; on Spark, which
    replaces whole session partitions, `insert_overwrite` (the model then rewrites every ticker from
    the first changed session of any). -#}
{% macro ticker_rewrite_strategy() -%}
    {{ return(adapter.dispatch('ticker_rewrite_strategy', 'quantmini')()) }}
{%- endmacro %}

{% macro default__ticker_rewrite_strategy() -%}
    {{ return('ticker_rewrite') }}
{%- endmacro %}

{% macro spark__ticker_rewrite_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}


{#-
    The changes since this model's last build, per ticker: `<name>(ticker, rewritten_from_date)`, as
    CTEs (end the list with a comma; `name` is the last one). Inputs:
      input:  a CTE of the upstream rows, one per (ticker, session), with `built_at`
      extra:  optional CTE of more (ticker, rewritten_from_date) pairs (e.g. factor changes), which may
              compare stamps with stored_built_at()
    Rows stored here correspond one to one with the input's rows, so a ticker whose rows before its
    first change number differently here and upstream lost rows there (a vanished row leaves no stamp):
    it is rewritten from its first session.
-#}
{% macro ticker_changes(name, input, extra=none) %}
    {{ name }}_new_rows as (

        select
            {{ input }}.ticker,
            min({{ input }}.session_date) as rewritten_from_date

        from {{ input }}
        where {{ input }}.built_at > {{ stored_built_at() }}
        group by {{ input }}.ticker

    ),

    {{ name }}_first_changes as (

        select
            ticker,
            min(rewritten_from_date) as rewritten_from_date

        from (
            select * from {{ name }}_new_rows{% if extra %} union all select * from {{ extra }}{% endif %}
        ) as first_changes
        group by ticker

    ),

    {{ name }}_input_counts as (

        select
            {{ input }}.ticker,
            count(*) as row_count,
            min({{ input }}.session_date) as first_session_date

        from {{ input }}
        left join {{ name }}_first_changes on {{ input }}.ticker = {{ name }}_first_changes.ticker
        where
            {{ name }}_first_changes.rewritten_from_date is null
            or {{ input }}.session_date < {{ name }}_first_changes.rewritten_from_date
        group by {{ input }}.ticker

    ),

    {{ name }}_stored_counts as (

        select
            stored.ticker,
            count(*) as row_count,
            min(stored.session_date) as first_session_date

        from {{ this }} as stored
        left join {{ name }}_first_changes on stored.ticker = {{ name }}_first_changes.ticker
        where
            {{ name }}_first_changes.rewritten_from_date is null
            or stored.session_date < {{ name }}_first_changes.rewritten_from_date
        group by stored.ticker

    ),

    {{ name }}_lost_rows as (

        -- rows gone upstream without a trace: the ticker is rewritten from its first stored session
        select
            coalesce({{ name }}_stored_counts.ticker, {{ name }}_input_counts.ticker) as ticker,
            least(
                coalesce({{ name }}_stored_counts.first_session_date, {{ name }}_input_counts.first_session_date),
                coalesce({{ name }}_input_counts.first_session_date, {{ name }}_stored_counts.first_session_date)
            ) as rewritten_from_date

        from {{ name }}_stored_counts
        full outer join {{ name }}_input_counts on {{ name }}_stored_counts.ticker = {{ name }}_input_counts.ticker
        where {{ name }}_stored_counts.row_count is distinct from {{ name }}_input_counts.row_count

    ),

    {{ name }} as (

        select
            ticker,
            min(rewritten_from_date) as rewritten_from_date

        from (
            select * from {{ name }}_first_changes
            union all
            select * from {{ name }}_lost_rows
        ) as changes
        group by ticker

    )
{%- endmacro %}
