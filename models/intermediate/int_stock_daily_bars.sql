{#- incremental by session (dbt_project.yml); keyed by the listed ticker: a bar keeps its key when the
    security it belongs to is renamed -#}
{{
    config(
        unique_key=['listed_ticker', 'session_date'],
        post_hook=["{{ delete_replaced_bars() }}"],
    )
}}

{#-
    Daily bars filed under their security's current ticker (int_ticker_history): a renamed ticker's
    bars continue under the new name, so every window feature runs across the change. `listed_ticker`
    keeps the symbol the bar traded under.

    Incremental runs read only the bronze sessions that are new or were re-loaded (their load id
    differs from the one stored), and move the stored bars whose current ticker changed (a ticker-change
    event arrived); a ticker gone from a re-loaded session loses its bar (post-hook). `built_at` stamps
    the rows each build writes, which is how the models downstream find what changed. Sessions removed
    from bronze by `quantmini cleanup --bronze` stay here (retention, docs/operations.md).
-#}

{{ guard_retained_history(ref('stg_polygon__stocks_daily')) }}

{%- if is_incremental() %}
{%- set changed_sessions = changed_session_dates_filter(
    ref('stg_polygon__stocks_daily'), stored_load_id_column='load_id', bronze_table='stocks_daily'
) %}
{%- endif %}

with

daily_bars as (

    select * from {{ ref('stg_polygon__stocks_daily') }}
    {%- if is_incremental() %}
    where {{ changed_sessions }}
    {%- endif %}

),

ticker_history as (

    select * from {{ ref('int_ticker_history') }}

),

loaded_bars as (

    select
        {{ security_ticker('ticker_history', 'daily_bars.ticker') }} as ticker,
        daily_bars.ticker as listed_ticker,
        daily_bars.session_date,
        daily_bars.bar_start_at,
        daily_bars.open,
        daily_bars.high,
        daily_bars.low,
        daily_bars.close,
        daily_bars.volume,
        daily_bars.transactions,
        daily_bars.load_id

    from daily_bars
    left join ticker_history
        on {{ security_ticker_join('ticker_history', 'daily_bars.ticker', 'daily_bars.session_date') }}

),

{%- if is_incremental() %}

stored_bars as (

    select * from {{ this }}
    where not ({{ changed_sessions }})

),

renamed_tickers as (

    select distinct ticker from ticker_history

),

rename_candidates as (

    -- only bars of a symbol with ticker-change events, or filed under another ticker, can move
    select * from stored_bars
    where
        listed_ticker in (select renamed_tickers.ticker from renamed_tickers)
        or ticker <> listed_ticker

),

remapped_bars as (

    -- stored bars whose security's current ticker is no longer the one they are filed under
    select
        {{ security_ticker('ticker_history', 'rename_candidates.listed_ticker') }} as ticker,
        rename_candidates.listed_ticker,
        rename_candidates.session_date,
        rename_candidates.bar_start_at,
        rename_candidates.open,
        rename_candidates.high,
        rename_candidates.low,
        rename_candidates.close,
        rename_candidates.volume,
        rename_candidates.transactions,
        rename_candidates.load_id

    from rename_candidates
    left join ticker_history
        on {{ security_ticker_join(
            'ticker_history', 'rename_candidates.listed_ticker', 'rename_candidates.session_date'
        ) }}
    where {{ security_ticker('ticker_history', 'rename_candidates.listed_ticker') }} <> rename_candidates.ticker

),

written_bars as (

    select
        *,
        {{ run_started_instant() }} as built_at

    from loaded_bars

    union all

    select
        *,
        {{ run_started_instant() }} as built_at

    from remapped_bars
    {%- if incremental_replaces_whole_sessions() %}

    -- a session is replaced whole: the other bars of a session with a moved bar are written again, as
    -- they were
    union all

    -- by name: Spark keeps a table's partition column last
    select
        stored_bars.ticker,
        stored_bars.listed_ticker,
        stored_bars.session_date,
        stored_bars.bar_start_at,
        stored_bars.open,
        stored_bars.high,
        stored_bars.low,
        stored_bars.close,
        stored_bars.volume,
        stored_bars.transactions,
        stored_bars.load_id,
        stored_bars.built_at

    from stored_bars
    where
        stored_bars.session_date in (select remapped_bars.session_date from remapped_bars)
        and not exists (
            select 1 from remapped_bars
            where
                remapped_bars.listed_ticker = stored_bars.listed_ticker
                and remapped_bars.session_date = stored_bars.session_date
        )
    {%- endif %}

),

{%- else %}

written_bars as (

    select
        *,
        {{ run_started_instant() }} as built_at

    from loaded_bars

),

{%- endif %}

final as (

    select
        ticker,
        listed_ticker,
        session_date,
        bar_start_at,
        open,
        high,
        low,
        close,
        volume,
        transactions,
        load_id,
        built_at

    from written_bars

)

select * from final
