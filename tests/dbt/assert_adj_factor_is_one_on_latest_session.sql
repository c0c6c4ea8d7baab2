-- Qlib convention: adjusted = raw x factor with the factor at 1.0 on each ticker's latest session, so
-- the newest prices are the quoted ones. Returns the tickers whose latest row breaks it.
with

features as (

    -- on a daily refresh, the sessions it loaded (macros/test_scope.sql)
    select * from {{ ref('fct_stock_features_daily') }}
    where {{ test_sessions_scope() }}

),

ranked as (

    select
        ticker,
        session_date,
        adj_factor,
        row_number() over (partition by ticker order by session_date desc) as recency_rank

    from features

),

latest_rows as (

    select
        ticker,
        session_date,
        adj_factor

    from ranked
    where recency_rank = 1

)

select * from latest_rows
where adj_factor != 1.0
