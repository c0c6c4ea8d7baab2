-- Moneyness and in-the-money need a traded contract's deliverable and its underlying's close: returns
-- the traded contracts with no row in the options contracts reference (load options_contracts; expired
-- ones included) and those whose underlying never has a close on the contract's sessions (e.g. a root
-- like XYZ1 taken for an underlying when the reference is missing).
with

traded as (

    select
        contract_ticker,
        min(session_date) as first_session,
        max(session_date) as last_session,
        max(underlying_ticker) as underlying_ticker,
        count(underlying_close) as priced_sessions

    from {{ ref('fct_option_contracts_daily') }}
    group by contract_ticker

),

contracts as (

    select * from {{ ref('int_option_contracts') }}

)

select
    traded.contract_ticker,
    traded.first_session,
    traded.last_session,
    traded.underlying_ticker,
    case
        when not coalesce(contracts.has_reference, false) then 'no reference row'
        else 'underlying has no stock bars on its sessions'
    end as problem

from traded
left join contracts on traded.contract_ticker = contracts.contract_ticker
where not coalesce(contracts.has_reference, false) or traded.priced_sessions = 0
