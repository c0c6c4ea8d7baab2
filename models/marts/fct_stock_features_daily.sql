{#- incremental by session (dbt_project.yml); the exceptions: keyed by ticker too, and a ticker that
    vanished from a re-loaded session loses its row -#}
{{
    config(
        unique_key=['ticker', 'session_date'],
        on_schema_change='append_new_columns',
        post_hook=["{{ delete_vanished_ticker_sessions(ref('int_stock_daily_adjusted')) }}"],
    )
}}

{#-
    Daily research features per ticker, all from adjusted prices and over full windows of the ticker's
    own traded sessions (a session without a row, e.g. a halt, is not a window slot; the return after it
    spans the gap, and previous_session_date shows it). A feature is NULL until its window is full.

    Incremental runs find, per ticker, the first session whose inputs differ from what is stored (new
    sessions, re-loaded sessions, or every session before a new split or dividend, whose factor
    changed), re-read `feature_lookback_sessions` earlier sessions of that ticker so every window is
    complete, and rewrite that ticker from the first changed session on. Rows that vanished from the
    input are deleted by the post-hook. Where the engine replaces whole session partitions (Spark),
    every ticker is rewritten from the first changed session of any ticker instead. The result equals
    a full refresh row for row.

    Retention (docs/operations.md): sessions before bronze's first session were removed from bronze by
    `quantmini cleanup --bronze`, not from the market, so their stored rows are kept ("retired" rows).
    They stay inputs of the windows (a session just after the cutoff still gets its full lookback) and
    follow later corporate actions: their factor moves by the same ratio as the factor of the ticker's
    first session still in bronze, which is what a split or dividend after that session does to every
    earlier session. A full refresh cannot rebuild them, so `guard_retained_history` refuses one.

    `built_at` is when the dbt run that wrote a row started: the rows an incremental run rewrites get
    its time, the others keep theirs, so gold finds what changed since its last export from the rows
    written after it (docs/gold.md "Incremental semantics"). A lake built before the column existed
    gains it on its next run (`append_new_columns`), NULL on the rows written before.
-#}

{%- set lookback_sessions = var('feature_lookback_sessions', 260) %}
{#- a ticker's own sessions in order: the window every feature is computed over -#}
{%- set by_ticker = 'partition by ticker order by session_date' %}

{{ guard_retained_history(ref('int_stock_daily_adjusted')) }}

with

current_bars as (

    select * from {{ ref('int_stock_daily_adjusted') }}

),

{% if is_incremental() %}

bronze_start as (

    select min(session_date) as first_session

    from current_bars

),

stored_anchors as (

    select
        current_bars.ticker,
        current_bars.adj_factor / anchor_rows.adj_factor as factor_ratio,
        row_number() over (partition by current_bars.ticker order by current_bars.session_date) as session_rank

    from current_bars
    inner join {{ this }} as anchor_rows
        on
            current_bars.ticker = anchor_rows.ticker
            and current_bars.session_date = anchor_rows.session_date

),

factor_anchors as (

    -- each ticker's first session still in bronze: how far its factor moved since it was stored
    select
        ticker,
        factor_ratio

    from stored_anchors
    where session_rank = 1

),

retired_factors as (

    select
        retired_rows.ticker,
        retired_rows.session_date,
        retired_rows.open,
        retired_rows.high,
        retired_rows.low,
        retired_rows.close,
        retired_rows.volume,
        retired_rows.transactions,
        retired_rows.vwap,
        retired_rows.vwap_source,
        retired_rows.adj_factor * coalesce(factor_anchors.factor_ratio, cast(1 as double)) as adj_factor

    from {{ this }} as retired_rows
    cross join bronze_start
    left join factor_anchors on retired_rows.ticker = factor_anchors.ticker
    where bronze_start.first_session is null or retired_rows.session_date < bronze_start.first_session

),

daily_bars as (

    select
        ticker,
        session_date,
        open,
        high,
        low,
        close,
        volume,
        transactions,
        vwap,
        vwap_source,
        adj_factor,
        adj_open,
        adj_high,
        adj_low,
        adj_close,
        adj_volume,
        adj_vwap

    from current_bars

    union all

    select
        ticker,
        session_date,
        open,
        high,
        low,
        close,
        volume,
        transactions,
        vwap,
        vwap_source,
        adj_factor,
        {{ adjusted_bar_columns() }}

    from retired_factors

),

stored_bars as (

    select
        ticker,
        session_date,
        open,
        high,
        low,
        close,
        volume,
        transactions,
        vwap,
        vwap_source,
        adj_factor

    from {{ this }}

),

changed_bars as (

    select
        coalesce(daily_bars.ticker, stored_bars.ticker) as ticker,
        coalesce(daily_bars.session_date, stored_bars.session_date) as session_date

    from daily_bars
    full outer join stored_bars
        on
            daily_bars.ticker = stored_bars.ticker
            and daily_bars.session_date = stored_bars.session_date
    where
        daily_bars.ticker is null
        or stored_bars.ticker is null
        or daily_bars.open is distinct from stored_bars.open
        or daily_bars.high is distinct from stored_bars.high
        or daily_bars.low is distinct from stored_bars.low
        or daily_bars.close is distinct from stored_bars.close
        or daily_bars.volume is distinct from stored_bars.volume
        or daily_bars.transactions is distinct from stored_bars.transactions
        or daily_bars.vwap is distinct from stored_bars.vwap
        or daily_bars.vwap_source is distinct from stored_bars.vwap_source
        or daily_bars.adj_factor is distinct from stored_bars.adj_factor

),

{% if incremental_replaces_whole_sessions() %}

first_change as (

    select min(session_date) as rewrite_from_date

    from changed_bars

),

changed_tickers as (

    -- a session is replaced whole: every ticker traded since the first changed session is rewritten
    select
        daily_bars.ticker,
        min(first_change.rewrite_from_date) as rewrite_from_date

    from daily_bars
    cross join first_change
    where daily_bars.session_date >= first_change.rewrite_from_date
    group by daily_bars.ticker

),

{% else %}

changed_tickers as (

    select
        ticker,
        min(session_date) as rewrite_from_date

    from changed_bars
    group by ticker

),

{% endif %}

numbered_bars as (

    select
        daily_bars.*,
        changed_tickers.rewrite_from_date,
        row_number() over (partition by daily_bars.ticker order by daily_bars.session_date) as ticker_session_number

    from daily_bars
    inner join changed_tickers on daily_bars.ticker = changed_tickers.ticker

),

lookback_starts as (

    select
        ticker,
        min(ticker_session_number) - {{ lookback_sessions }} as first_session_number

    from numbered_bars
    where session_date >= rewrite_from_date
    group by ticker

),

scoped_bars as (

    select numbered_bars.*

    from numbered_bars
    inner join lookback_starts on numbered_bars.ticker = lookback_starts.ticker
    where numbered_bars.ticker_session_number >= lookback_starts.first_session_number

),

{% else %}

scoped_bars as (

    select
        *,
        cast(null as date) as rewrite_from_date

    from current_bars

),

{% endif %}

lagged as (

    select
        *,
        lag(session_date) over by_ticker as previous_session_date,
        lag(adj_close) over by_ticker as previous_adj_close,
        lag(adj_close, 5) over by_ticker as adj_close_5_sessions_ago,
        lag(adj_close, 20) over by_ticker as adj_close_20_sessions_ago,
        lag(adj_close, 60) over by_ticker as adj_close_60_sessions_ago

    from scoped_bars
    window by_ticker as (partition by ticker order by session_date)

),

daily_moves as (

    select
        *,
        adj_close / nullif(previous_adj_close, 0) - 1 as return_1d,
        case
            when adj_close > 0 and previous_adj_close > 0 then ln(adj_close / previous_adj_close)
        end as log_return_1d,
        case
            when previous_adj_close is not null
                then greatest(
                    adj_high - adj_low,
                    abs(adj_high - previous_adj_close),
                    abs(adj_low - previous_adj_close)
                )
        end as true_range,
        -- greatest() skips NULLs, so the first session needs its own case to stay out of the RSI window
        case when previous_adj_close is not null then greatest(adj_close - previous_adj_close, 0) end as close_gain,
        case when previous_adj_close is not null then greatest(previous_adj_close - adj_close, 0) end as close_loss

    from lagged

),

windows as (

    -- window means as fixed-order sums (macros/deterministic_sums.sql): bit-identical on every build,
    -- incremental or full, where a windowed avg/stddev_samp over doubles is not
    select
        *,
        {{ fixed_order_window_sum('log_return_1d', 0, 19, by_ticker) }} / 20.0 as mean_log_return_20,
        count(log_return_1d) over ({{ by_ticker }} rows between 19 preceding and current row) as log_returns_in_20,
        {{ fixed_order_window_sum('log_return_1d', 0, 59, by_ticker) }} / 60.0 as mean_log_return_60,
        count(log_return_1d) over ({{ by_ticker }} rows between 59 preceding and current row) as log_returns_in_60,
        {{ fixed_order_window_sum('adj_volume', 1, 20, by_ticker) }} / 20.0 as mean_adj_volume_20_raw,
        count(adj_volume) over ({{ by_ticker }} rows between 20 preceding and 1 preceding) as volumes_in_20,
        {{ fixed_order_window_sum('true_range', 0, 13, by_ticker) }} / 14.0 as atr_14_raw,
        count(true_range) over ({{ by_ticker }} rows between 13 preceding and current row) as true_ranges_in_14,
        {{ fixed_order_window_sum('close_gain', 0, 13, by_ticker) }} / 14.0 as mean_gain_14,
        {{ fixed_order_window_sum('close_loss', 0, 13, by_ticker) }} / 14.0 as mean_loss_14,
        count(close_gain) over ({{ by_ticker }} rows between 13 preceding and current row) as moves_in_14,
        max(adj_high) over ({{ by_ticker }} rows between 251 preceding and current row) as high_252_raw,
        min(adj_low) over ({{ by_ticker }} rows between 251 preceding and current row) as low_252_raw,
        count(*) over ({{ by_ticker }} rows between 251 preceding and current row) as sessions_in_252

    from daily_moves

),

deviations as (

    -- sample standard deviations as two fixed-order passes (mean, then squared deviations from it)
    select
        *,
        sqrt(
            {{ fixed_order_window_sum_of_squares('log_return_1d', 'mean_log_return_20', 0, 19, by_ticker) }} / 19.0
        ) as volatility_20_raw,
        sqrt(
            {{ fixed_order_window_sum_of_squares('log_return_1d', 'mean_log_return_60', 0, 59, by_ticker) }} / 59.0
        ) as volatility_60_raw

    from windows

),

features as (

    select
        ticker,
        session_date,
        previous_session_date,
        open,
        high,
        low,
        close,
        volume,
        transactions,
        vwap,
        vwap_source,
        adj_factor,
        adj_open,
        adj_high,
        adj_low,
        adj_close,
        adj_volume,
        adj_vwap,
        return_1d as change,
        return_1d,
        adj_close / nullif(adj_close_5_sessions_ago, 0) - 1 as return_5d,
        adj_close / nullif(adj_close_20_sessions_ago, 0) - 1 as return_20d,
        adj_close / nullif(adj_close_60_sessions_ago, 0) - 1 as return_60d,
        log_return_1d,
        case
            when adj_close > 0 and adj_close_5_sessions_ago > 0 then ln(adj_close / adj_close_5_sessions_ago)
        end as log_return_5d,
        case
            when adj_close > 0 and adj_close_20_sessions_ago > 0 then ln(adj_close / adj_close_20_sessions_ago)
        end as log_return_20d,
        case
            when adj_close > 0 and adj_close_60_sessions_ago > 0 then ln(adj_close / adj_close_60_sessions_ago)
        end as log_return_60d,
        case when log_returns_in_20 = 20 then volatility_20_raw end as realized_volatility_20d,
        case when log_returns_in_60 = 60 then volatility_60_raw end as realized_volatility_60d,
        close * volume as dollar_volume,
        case
            when volumes_in_20 = 20 and mean_adj_volume_20_raw > 0 then adj_volume / mean_adj_volume_20_raw
        end as relative_volume_20d,
        case when true_ranges_in_14 = 14 then atr_14_raw end as atr_14,
        adj_open / nullif(previous_adj_close, 0) - 1 as gap,
        close / nullif(open, 0) - 1 as intraday_return,
        case when sessions_in_252 = 252 then adj_close / nullif(high_252_raw, 0) - 1 end as distance_to_52_week_high,
        case when sessions_in_252 = 252 then adj_close / nullif(low_252_raw, 0) - 1 end as distance_to_52_week_low,
        -- windowed means can carry a rounding residue around 1e-18 where the exact value is 0
        case
            when moves_in_14 < 14 then null
            when greatest(mean_gain_14, 0) + greatest(mean_loss_14, 0) = 0 then 50.0
            else 100.0 * (greatest(mean_gain_14, 0) / (greatest(mean_gain_14, 0) + greatest(mean_loss_14, 0)))
        end as rsi_14

    from deviations
    {% if is_incremental() %}
    where session_date >= rewrite_from_date
    {% endif %}

)

select
    *,
    {{ run_started_instant() }} as built_at

from features
