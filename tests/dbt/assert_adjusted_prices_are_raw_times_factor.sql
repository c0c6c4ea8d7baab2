-- Adjusted bars are exactly raw x adj_factor (volume divided by it), the contract gold relies on.
with

features as (

    -- on a daily refresh, the sessions it loaded (macros/test_scope.sql)
    select * from {{ ref('fct_stock_features_daily') }}
    where {{ test_sessions_scope() }}

)

select
    ticker,
    session_date

from features
where
    adj_open is distinct from open * adj_factor
    or adj_high is distinct from high * adj_factor
    or adj_low is distinct from low * adj_factor
    or adj_close is distinct from close * adj_factor
    or adj_vwap is distinct from vwap * adj_factor
    or adj_volume is distinct from volume / adj_factor
