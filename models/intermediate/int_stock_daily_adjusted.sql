{#-
    Daily bars with their adjustment factor and VWAP. Recomputed in full on every build: a new split or
    dividend changes the factor of every earlier session of its ticker, and the whole table is small
    (one row per ticker and session); the expensive rolling features downstream are incremental.
-#}

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

bars_with_factors as (

    select
        daily_bars.*,
        coalesce(adjustment_factors.adjustment_factor, 1.0) as adj_factor

    from daily_bars
    left join adjustment_factors
        on
            daily_bars.ticker = adjustment_factors.ticker
            and daily_bars.session_date < adjustment_factors.applies_until_date
            -- one range predicate (no OR) so DuckDB plans a range join, not a filtered cross product
            and daily_bars.session_date >= coalesce(adjustment_factors.applies_from_date, date '0001-01-01')

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
        ticker,
        session_date,
        listed_ticker,
        open,
        high,
        low,
        close,
        volume,
        transactions,
        vwap,
        vwap_source,
        adj_factor,
        {{ adjusted_bar_columns() }},
        load_id as source_load_id

    from bars_with_vwap

)

select * from final
