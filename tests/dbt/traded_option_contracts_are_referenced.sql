-- Moneyness and in-the-money need a traded contract's deliverable, and its underlying's close: returns
-- the traded contracts with no row in the options contracts reference (load options_contracts; expired
-- ones included) and those whose underlying never traded as a stock in bronze (e.g. a root like XYZ1
-- taken for an underlying when the reference is missing).
with

traded as (

    select
        contract_ticker,
        min(session_date) as first_session,
        max(session_date) as last_session

    from {{ ref('stg_polygon__options_daily') }}
    group by contract_ticker

),

contracts as (

    select * from {{ ref('int_option_contracts') }}

),

stock_tickers as (

    select distinct ticker from {{ ref('stg_polygon__stocks_daily') }}

)

select
    traded.contract_ticker,
    traded.first_session,
    traded.last_session,
    contracts.underlying_ticker,
    case
        when not coalesce(contracts.has_reference, false) then 'no reference row'
        else 'underlying has no stock bars'
    end as problem

from traded
left join contracts on traded.contract_ticker = contracts.contract_ticker
left join stock_tickers on contracts.underlying_ticker = stock_tickers.ticker
where not coalesce(contracts.has_reference, false) or stock_tickers.ticker is null
