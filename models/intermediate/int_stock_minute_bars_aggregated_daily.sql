{{ guard_retained_history(ref('stg_polygon__stocks_minute')) }}

{#-
    One row per ticker and session summarising its minute bars. Every value depends on one session
    only, so an incremental run rebuilds exactly the sessions that are new or were re-loaded in bronze
    (whole sessions: the unique key is the session date, so a ticker that vanished from a re-loaded
    session loses its row too). `built_at` stamps the sessions each build wrote, for the models downstream.
-#}

with

minute_bars as (

    select * from {{ ref('stg_polygon__stocks_minute') }}
    {% if is_incremental() %}
    where {{ changed_session_dates_filter(ref('stg_polygon__stocks_minute'), bronze_table='stocks_minute') }}
    {% endif %}

),

trading_sessions as (

    select * from {{ ref('int_trading_sessions') }}

),

bars_in_sessions as (

    select
        minute_bars.*,
        trading_sessions.regular_open_at,
        trading_sessions.regular_close_at,
        coalesce(
            minute_bars.bar_start_at >= trading_sessions.regular_open_at
            and minute_bars.bar_start_at < trading_sessions.regular_close_at,
            false
        ) as is_regular_hours,
        coalesce(
            minute_bars.bar_start_at >= trading_sessions.regular_open_at
            and minute_bars.bar_start_at < trading_sessions.regular_open_at + interval 30 minute,
            false
        ) as is_first_30_minutes,
        coalesce(
            minute_bars.bar_start_at >= trading_sessions.regular_open_at
            and minute_bars.bar_start_at < trading_sessions.regular_close_at - interval 30 minute,
            false
        ) as is_before_last_30_minutes,
        (minute_bars.high + minute_bars.low + minute_bars.close) / 3.0 as typical_price

    from minute_bars
    left join trading_sessions on minute_bars.session_date = trading_sessions.session_date

),

regular_hours_returns as (

    select
        ticker,
        session_date,
        bar_start_at,
        ln(
            close / lag(close) over (partition by ticker, session_date order by bar_start_at)
        ) as log_return

    from bars_in_sessions
    where is_regular_hours and close > 0

),

realized_variance as (

    select
        ticker,
        session_date,
        {{ exact_sum('log_return * log_return', 30) }} as sum_squared_log_returns,
        count(log_return) as log_return_count

    from regular_hours_returns
    group by ticker, session_date

),

session_summaries as (

    select
        ticker,
        session_date,
        count(*) as minute_bar_count,
        {{ exact_sum('volume', 9) }} as minute_volume,
        cast(sum(transactions) as bigint) as minute_transactions,
        {{ exact_sum('typical_price * volume') }} / nullif({{ exact_sum('volume', 9) }}, 0) as minute_vwap,
        count(*) filter (where is_regular_hours and volume > 0) as active_minutes,
        {{ exact_sum('case when is_regular_hours then volume end', 9) }} as regular_hours_volume,
        min_by(open, bar_start_at) filter (where is_first_30_minutes) as first_30_minutes_open,
        max_by(close, bar_start_at) filter (where is_first_30_minutes) as first_30_minutes_close,
        max_by(close, bar_start_at) filter (where is_before_last_30_minutes) as last_30_minutes_start_close,
        max_by(close, bar_start_at) filter (where is_regular_hours) as regular_hours_close,
        max(load_id) as source_load_id

    from bars_in_sessions
    group by ticker, session_date

),

final as (

    select
        session_summaries.ticker,
        session_summaries.session_date,
        session_summaries.minute_bar_count,
        session_summaries.active_minutes,
        session_summaries.minute_volume,
        session_summaries.regular_hours_volume,
        session_summaries.minute_transactions,
        session_summaries.minute_vwap,
        case
            when realized_variance.log_return_count > 0
                then sqrt(realized_variance.sum_squared_log_returns)
        end as intraday_realized_volatility,
        session_summaries.first_30_minutes_close / nullif(session_summaries.first_30_minutes_open, 0)
        - 1 as first_30_minutes_return,
        session_summaries.regular_hours_close / nullif(session_summaries.last_30_minutes_start_close, 0)
        - 1 as last_30_minutes_return,
        session_summaries.source_load_id,
        {{ run_started_instant() }} as built_at

    from session_summaries
    left join realized_variance
        on
            session_summaries.ticker = realized_variance.ticker
            and session_summaries.session_date = realized_variance.session_date

)

select * from final
