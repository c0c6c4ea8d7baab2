{{ config(materialized='view') }}

{#-
    Option day bars with their parsed contract and the underlying's unadjusted close of the same
    session (strikes are unadjusted too). A view: the option marts read it with a session filter that
    DuckDB pushes down to the bronze partitions.
-#}

with

option_bars as (

    select * from {{ ref('stg_polygon__options_daily') }}

),

contracts as (

    select * from {{ ref('int_option_contracts') }}

),

stock_bars as (

    select * from {{ ref('stg_polygon__stocks_daily') }}

),

final as (

    select
        option_bars.contract_ticker,
        option_bars.session_date,
        contracts.underlying_ticker,
        contracts.contract_type,
        contracts.expiration_date,
        contracts.strike_price,
        contracts.shares_per_contract,
        contracts.has_reference,
        option_bars.open,
        option_bars.high,
        option_bars.low,
        option_bars.close,
        option_bars.volume,
        option_bars.transactions,
        stock_bars.close as underlying_close,
        option_bars.load_id

    from option_bars
    left join contracts on option_bars.contract_ticker = contracts.contract_ticker
    left join stock_bars
        on
            contracts.underlying_ticker = stock_bars.ticker
            and option_bars.session_date = stock_bars.session_date

)

select * from final
