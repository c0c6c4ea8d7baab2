{#-
    Daily bars filed under their security's current ticker (int_ticker_history): a renamed ticker's
    bars continue under the new name, so every window feature runs across the change. `listed_ticker`
    keeps the symbol the bar traded under.
-#}

with

daily_bars as (

    select * from {{ ref('stg_polygon__stocks_daily') }}

),

ticker_history as (

    select * from {{ ref('int_ticker_history') }}

)

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
