{{ guard_retained_history(ref('stg_polygon__stocks_minute')) }}

{#-
    Daily features derived from minute bars, one row per ticker and session with minute data. Each
    value depends on its own session only, so incremental runs rewrite just the sessions whose source
    load changed (new or re-loaded in bronze).
-#}

with

minute_summaries as (

    select * from {{ ref('int_stock_minute_bars_aggregated_daily') }}
    {% if is_incremental() %}
    where {{ changed_session_dates_filter(ref('int_stock_minute_bars_aggregated_daily'), 'source_load_id') }}
    {% endif %}

),

final as (

    select
        ticker,
        session_date,
        minute_vwap,
        intraday_realized_volatility,
        first_30_minutes_return,
        last_30_minutes_return,
        active_minutes,
        minute_bar_count,
        minute_volume,
        regular_hours_volume,
        source_load_id

    from minute_summaries

)

select * from final
