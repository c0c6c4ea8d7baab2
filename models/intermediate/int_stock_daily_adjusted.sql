{#- incremental by session (dbt_project.yml); each changed ticker is rewritten from its first changed
    session (macros/ticker_rewrite.sql) -#}
{{
    config(
        unique_key=['ticker', 'session_date'],
        incremental_strategy=ticker_rewrite_strategy(),
    )
}}

{#-
    Daily bars with their adjustment factor and VWAP.

    A new split or dividend changes the factor of every earlier session of its ticker, so incremental
    runs rewrite a ticker whole when its factors changed (`factor_signature`, a hash of the ticker's
    rows in int_stock_adjustment_factors, differs from the one stored), and from the first changed
    session when bars were new, re-loaded or moved (their `built_at` is newer than this model's) or
    minute bars of a session were rebuilt (the session's VWAP). Nothing else is read from history.
-#}


{{ guard_retained_history(ref('int_stock_daily_bars')) }}

with

daily_bars as (

    select * from {{ ref('int_stock_daily_bars') }}

),

adjustment_factors as (

    select * from {{ ref('int_stock_adjustment_factors') }}

),

minute_summaries as (

    select * from {{ ref('int_stock_minute_bars_aggregated_daily') }}

),

factor_signatures as (

    select
        ticker,
        bit_xor({{ row_hash(['applies_until_date', 'adjustment_factor']) }}) as factor_signature

    from adjustment_factors
    group by ticker

),

{%- if is_incremental() %}

stored_signatures as (

    select
        ticker,
        max(factor_signature) as factor_signature

    from {{ this }}
    group by ticker

),

first_sessions as (

    select
        ticker,
        min(session_date) as first_session_date

    from daily_bars
    group by ticker

),

factor_changes as (

    -- a ticker whose factors changed: every session of it
    select
        first_sessions.ticker,
        first_sessions.first_session_date as rewritten_from_date

    from first_sessions
    left join factor_signatures on first_sessions.ticker = factor_signatures.ticker
    left join stored_signatures on first_sessions.ticker = stored_signatures.ticker
    where
        not (
            factor_signatures.factor_signature = stored_signatures.factor_signature
            or (factor_signatures.factor_signature is null and stored_signatures.factor_signature is null)
        )

    union all

    -- sessions whose minute bars were rebuilt: every ticker of them
    select
        daily_bars.ticker,
        min(daily_bars.session_date) as rewritten_from_date

    from daily_bars
    where
        daily_bars.session_date in (
            select minute_summaries.session_date
            from minute_summaries
            where minute_summaries.built_at > {{ stored_built_at() }}
        )
    group by daily_bars.ticker

),

{{ ticker_changes('changed_tickers', 'daily_bars', extra='factor_changes') }},

{%- if incremental_replaces_whole_sessions() %}

first_change as (

    select min(rewritten_from_date) as rewritten_from_date

    from changed_tickers

),

scoped_bars as (

    -- a session is replaced whole: every ticker from the first changed session of any
    select
        daily_bars.*,
        first_change.rewritten_from_date

    from daily_bars
    cross join first_change
    where daily_bars.session_date >= first_change.rewritten_from_date

),

{%- else %}

scoped_bars as (

    select
        daily_bars.*,
        changed_tickers.rewritten_from_date

    from daily_bars
    inner join changed_tickers on daily_bars.ticker = changed_tickers.ticker
    where daily_bars.session_date >= changed_tickers.rewritten_from_date

),

{%- endif %}

{%- else %}

scoped_bars as (

    select
        *,
        cast(null as date) as rewritten_from_date

    from daily_bars

),

{%- endif %}

bars_with_factors as (

    select
        scoped_bars.*,
        coalesce(adjustment_factors.adjustment_factor, 1.0) as adj_factor

    from scoped_bars
    left join adjustment_factors
        on
            scoped_bars.ticker = adjustment_factors.ticker
            and scoped_bars.session_date < adjustment_factors.applies_until_date
            -- one range predicate (no OR) so DuckDB plans a range join, not a filtered cross product
            and scoped_bars.session_date >= coalesce(adjustment_factors.applies_from_date, date '0001-01-01')

),

bars_with_vwap as (

    select
        bars_with_factors.*,
        -- minute VWAP where the session has minute bars with volume, else the day's typical price
        coalesce(
            minute_summaries.minute_vwap,
            (bars_with_factors.high + bars_with_factors.low + bars_with_factors.close) / 3.0
        ) as vwap,
        case
            when minute_summaries.minute_vwap is not null then 'minute_bars'
            else 'daily_typical_price'
        end as vwap_source

    from bars_with_factors
    left join minute_summaries
        on
            bars_with_factors.listed_ticker = minute_summaries.ticker
            and bars_with_factors.session_date = minute_summaries.session_date

),

final as (

    select
        bars_with_vwap.ticker,
        bars_with_vwap.session_date,
        bars_with_vwap.listed_ticker,
        bars_with_vwap.open,
        bars_with_vwap.high,
        bars_with_vwap.low,
        bars_with_vwap.close,
        bars_with_vwap.volume,
        bars_with_vwap.transactions,
        bars_with_vwap.vwap,
        bars_with_vwap.vwap_source,
        bars_with_vwap.adj_factor,
        {{ adjusted_bar_columns() }},
        bars_with_vwap.load_id as source_load_id,
        factor_signatures.factor_signature,
        {{ run_started_instant() }} as built_at,
        bars_with_vwap.rewritten_from_date

    from bars_with_vwap
    left join factor_signatures on bars_with_vwap.ticker = factor_signatures.ticker

)

select * from final
{%- if is_incremental() and not incremental_replaces_whole_sessions() %}

-- one marker row per rewritten ticker (a NULL session): the strategy deletes from its date even when
-- nothing of the ticker is left to insert
union all by name

select
    ticker,
    rewritten_from_date

from changed_tickers
{%- endif %}
