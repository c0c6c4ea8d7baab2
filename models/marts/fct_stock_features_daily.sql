{#- incremental by session (dbt_project.yml); each changed ticker is rewritten from its first changed
    session (macros/ticker_rewrite.sql) -#}
{{
    config(
        unique_key=['ticker', 'session_date'],
        on_schema_change='append_new_columns',
        incremental_strategy=ticker_rewrite_strategy(),
    )
}}

{#-
    Daily research features per ticker, all from adjusted prices and over full windows of the ticker's
    own traded sessions (a session without a row, e.g. a halt, is not a window slot; the return after it
    spans the gap, and previous_session_date shows it). A feature is NULL until its window is full.

    Incremental runs take, per ticker, the first session int_stock_daily_adjusted rewrote since this
    model's last build (`built_at`: new sessions, re-loaded sessions, or every session of a ticker whose
    factors changed after a split or dividend), re-read `feature_lookback_sessions` earlier sessions of
    that ticker so every window is complete, and rewrite that ticker from there on; a ticker that lost
    rows upstream is rewritten whole (macros/ticker_rewrite.sql). Where the engine replaces whole
    session partitions (Spark), every ticker is rewritten from the first changed session of any ticker
    instead. The result equals a full refresh row for row.

    Retention (docs/operations.md): sessions removed from bronze by `quantmini cleanup --bronze` stay in
    the intermediate models, which keep adjusting them after later corporate actions, so they stay here
    too and remain inputs of the windows. A full refresh cannot rebuild them, so
    `guard_retained_history` refuses one.

    `built_at` is when the dbt run that wrote a row started: the rows an incremental run rewrites get
    its time, the others keep theirs, so gold and the models downstream find what changed from the
    rows written after they last read (docs/gold.md "Incremental semantics"). A lake built before the
    column existed gains it on its next run (`append_new_columns`), NULL on the rows written before.
-#}

{%- set lookback_sessions = var('feature_lookback_sessions', 260) %}
{#- the features other than the 52-week ones look back 60 sessions at most (60-session returns and
    volatility of log returns, each of which reads the session before) -#}
{%- set short_lookback_sessions = 64 %}
{#- how far back the calendar floor of the lookback sits: a quarter more, for sessions a ticker missed -#}
{%- set lookback_floor_sessions = (lookback_sessions | int) * 5 // 4 %}
{#- a ticker's own sessions in order: the window every feature is computed over -#}
{%- set by_ticker = 'partition by ticker order by session_date' %}

-- depends_on: {{ ref('int_trading_sessions') }}
{{ guard_retained_history(ref('int_stock_daily_adjusted')) }}

with

current_bars as (

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
        adj_vwap,
        built_at

    from {{ ref('int_stock_daily_adjusted') }}

),

{% if is_incremental() %}

{{ ticker_changes('ticker_changes', 'current_bars') }},

{% if incremental_replaces_whole_sessions() %}

first_change as (

    select min(rewritten_from_date) as rewritten_from_date

    from ticker_changes

),

changed_tickers as (

    -- a session is replaced whole: every ticker traded since the first changed session is rewritten
    select
        current_bars.ticker,
        min(first_change.rewritten_from_date) as rewritten_from_date

    from current_bars
    cross join first_change
    where current_bars.session_date >= first_change.rewritten_from_date
    group by current_bars.ticker

),

{% else %}

changed_tickers as (

    select * from ticker_changes

),

{% endif %}

trading_sessions as (

    select
        session_date,
        row_number() over (order by session_date) as session_number

    from {{ ref('int_trading_sessions') }}

),

lookback_floors as (

    -- a calendar session a quarter more than `lookback_sessions` before each ticker's first rewritten
    -- one: a ticker that missed fewer sessions than that since has enough rows from there
    select
        changed_tickers.ticker,
        changed_tickers.rewritten_from_date,
        floor_sessions.session_date as floor_date

    from changed_tickers
    left join trading_sessions as first_sessions on changed_tickers.rewritten_from_date = first_sessions.session_date
    left join trading_sessions as floor_sessions
        on first_sessions.session_number - {{ lookback_floor_sessions }} = floor_sessions.session_number

),

preceding_counts as (

    select
        lookback_floors.ticker,
        count(*) as preceding_rows,
        sum(case when current_bars.session_date >= lookback_floors.floor_date then 1 else 0 end)
            as preceding_rows_from_floor

    from current_bars
    inner join lookback_floors on current_bars.ticker = lookback_floors.ticker
    where current_bars.session_date < lookback_floors.rewritten_from_date
    group by lookback_floors.ticker

),

lookback_dates as (

    -- where each ticker's lookback starts; NULL (every session of it) when halts left fewer than
    -- `lookback_sessions` rows after the calendar floor while more exist before it
    select
        lookback_floors.ticker,
        lookback_floors.rewritten_from_date,
        case
            when
                coalesce(preceding_counts.preceding_rows_from_floor, 0)
                >= least({{ lookback_sessions }}, coalesce(preceding_counts.preceding_rows, 0))
                then lookback_floors.floor_date
        end as lookback_from_date

    from lookback_floors
    left join preceding_counts on lookback_floors.ticker = preceding_counts.ticker

),

numbered_bars as (

    select
        current_bars.*,
        lookback_dates.rewritten_from_date,
        row_number() over (partition by current_bars.ticker order by current_bars.session_date) as ticker_session_number

    from current_bars
    inner join lookback_dates on current_bars.ticker = lookback_dates.ticker
    where lookback_dates.lookback_from_date is null or current_bars.session_date >= lookback_dates.lookback_from_date

),

lookback_starts as (

    -- the 52-week features need `lookback_sessions` earlier rows; the others {{ short_lookback_sessions }}
    select
        ticker,
        min(ticker_session_number) - {{ lookback_sessions }} as first_session_number,
        min(ticker_session_number) - {{ short_lookback_sessions }} as short_first_session_number

    from numbered_bars
    where session_date >= rewritten_from_date
    group by ticker

),

scoped_bars as (

    select
        numbered_bars.*,
        lookback_starts.short_first_session_number

    from numbered_bars
    inner join lookback_starts on numbered_bars.ticker = lookback_starts.ticker
    where numbered_bars.ticker_session_number >= lookback_starts.first_session_number

),

{% else %}

scoped_bars as (

    select
        *,
        cast(null as date) as rewritten_from_date

    from current_bars

),

{% endif %}

long_windows as (

    -- the 52-week features, over the long lookback
    select
        *,
        max(adj_high) over ({{ by_ticker }} rows between 251 preceding and current row) as high_252_raw,
        min(adj_low) over ({{ by_ticker }} rows between 251 preceding and current row) as low_252_raw,
        count(*) over ({{ by_ticker }} rows between 251 preceding and current row) as sessions_in_252

    from scoped_bars

),

short_scoped_bars as (

    -- every other feature, over the last `short_lookback_sessions` sessions before the rewritten ones
    select * from long_windows
    {%- if is_incremental() %}
    where ticker_session_number >= short_first_session_number
    {%- endif %}

),

lagged as (

    select
        *,
        lag(session_date) over by_ticker as previous_session_date,
        lag(adj_close) over by_ticker as previous_adj_close,
        lag(adj_close, 5) over by_ticker as adj_close_5_sessions_ago,
        lag(adj_close, 20) over by_ticker as adj_close_20_sessions_ago,
        lag(adj_close, 60) over by_ticker as adj_close_60_sessions_ago

    from short_scoped_bars
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
        count(close_gain) over ({{ by_ticker }} rows between 13 preceding and current row) as moves_in_14

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
        end as rsi_14,
        {{ run_started_instant() }} as built_at,
        rewritten_from_date

    from deviations
    {% if is_incremental() %}
    where session_date >= rewritten_from_date
    {% endif %}

)

select * from features
{%- if is_incremental() and not incremental_replaces_whole_sessions() %}

-- one marker row per rewritten ticker (a NULL session): the strategy deletes from its date even when
-- nothing of the ticker is left to insert
union all by name

select
    ticker,
    rewritten_from_date

from changed_tickers
{%- endif %}
