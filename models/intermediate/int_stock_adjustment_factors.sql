{#-
    Backward adjustment factors from splits and cash dividends, Qlib's convention: adjusted price =
    raw price x factor, and the factor is 1.0 from a ticker's last corporate action on.

    Each action takes effect on the ticker's first traded session on or after its ex-date and
    multiplies the factor of every earlier session by
      split:    split_from / split_to                       (a 2-for-1 split halves earlier prices)
      dividend: 1 - cash_amount / (previous close x split)  (CRSP-style; the previous close is put in
                                                            the basis of the ex-date first)
    Actions on or before a ticker's first session, or after its last, move no price in the data and
    are left out, so the latest session always has factor 1.0.

    Grain: one row per ticker and effective session; the factor applies to sessions in
    [applies_from_date, applies_until_date).
-#}

with

daily_bars as (

    select * from {{ ref('int_stock_daily_bars') }}

),

ticker_history as (

    select * from {{ ref('int_ticker_history') }}

),

-- corporate actions follow the security: filed under the ticker of their date, kept under the current one
splits as (

    select
        {{ security_ticker('ticker_history', 'raw_splits.ticker') }} as ticker,
        raw_splits.execution_date,
        raw_splits.split_from,
        raw_splits.split_to

    from {{ ref('stg_polygon__splits') }} as raw_splits
    left join ticker_history
        on {{ security_ticker_join('ticker_history', 'raw_splits.ticker', 'raw_splits.execution_date') }}

),

dividends as (

    select
        raw_dividends.dividend_id,
        {{ security_ticker('ticker_history', 'raw_dividends.ticker') }} as ticker,
        raw_dividends.ex_dividend_date,
        raw_dividends.cash_amount

    from {{ ref('stg_polygon__dividends') }} as raw_dividends
    left join ticker_history
        on {{ security_ticker_join('ticker_history', 'raw_dividends.ticker', 'raw_dividends.ex_dividend_date') }}

),

sessions_with_previous as (

    select
        ticker,
        session_date,
        lag(session_date) over by_ticker as previous_session_date,
        lag(close) over by_ticker as previous_close

    from daily_bars
    window by_ticker as (partition by ticker order by session_date)

),

distinct_splits as (

    -- Polygon can list one split under several ids; the same ratio on the same day counts once
    select distinct
        ticker,
        execution_date,
        split_from,
        split_to

    from splits
    where split_from > 0 and split_to > 0

),

distinct_dividends as (

    select distinct
        dividend_id,
        ticker,
        ex_dividend_date,
        cash_amount

    from dividends
    where cash_amount > 0

),

corporate_actions as (

    select
        ticker,
        execution_date as ex_date,
        split_from / split_to as split_factor,
        cast(0 as double) as cash_amount

    from distinct_splits

    union all

    select
        ticker,
        ex_dividend_date as ex_date,
        cast(1 as double) as split_factor,
        cash_amount

    from distinct_dividends

),

actions_on_sessions as (

    select
        sessions_with_previous.ticker,
        sessions_with_previous.session_date as effective_date,
        sessions_with_previous.previous_session_date,
        sessions_with_previous.previous_close,
        {{ product('corporate_actions.split_factor') }} as split_factor,
        {{ exact_sum('corporate_actions.cash_amount') }} as cash_amount,
        count(*) as action_count

    from corporate_actions
    inner join sessions_with_previous
        on
            corporate_actions.ticker = sessions_with_previous.ticker
            and corporate_actions.ex_date <= sessions_with_previous.session_date
            and corporate_actions.ex_date > sessions_with_previous.previous_session_date
    group by
        sessions_with_previous.ticker,
        sessions_with_previous.session_date,
        sessions_with_previous.previous_session_date,
        sessions_with_previous.previous_close

),

action_factors as (

    select
        *,
        case
            when cash_amount > 0 and cash_amount < previous_close * split_factor
                then 1 - cash_amount / (previous_close * split_factor)
            else cast(1 as double)
        end as dividend_factor,
        cash_amount > 0 and not coalesce(cash_amount < previous_close * split_factor, false)
            as is_dividend_ignored

    from actions_on_sessions

),

cumulative_factors as (

    select
        ticker,
        lag(effective_date) over by_ticker as applies_from_date,
        effective_date as applies_until_date,
        previous_close,
        split_factor,
        cash_amount,
        dividend_factor,
        split_factor * dividend_factor as action_factor,
        is_dividend_ignored,
        action_count,
        {{ product(
            'split_factor * dividend_factor',
            over='partition by ticker order by effective_date rows between current row and unbounded following'
        ) }} as adjustment_factor

    from action_factors
    window by_ticker as (partition by ticker order by effective_date)

)

select * from cumulative_factors
