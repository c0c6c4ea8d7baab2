{#-
    The identity rule: a security is its composite FIGI, and its history of tickers comes from
    Polygon's ticker-change events (`/vX/reference/tickers/{id}/events`). Each ticker names the security
    from its event date up to the next change; the security's current ticker is its latest one. Bars,
    corporate actions, filings, news and short data are filed under the ticker in use on their date and
    joined to the security here, so a renamed ticker's history continues under its current ticker
    (LGCY -> NEWC), while a symbol later reused by another company maps by date to the right one.
    Tickers without events map to themselves (no row here).
-#}

with

events as (

    select distinct
        composite_figi as security_id,
        new_ticker as ticker,
        event_date as valid_from_date

    from {{ ref('stg_polygon__ticker_events') }}
    where
        event_type = 'ticker_change'
        and composite_figi is not null
        and new_ticker is not null
        and event_date is not null

),

spans as (

    select
        security_id,
        ticker,
        valid_from_date,
        lead(valid_from_date) over (
            partition by security_id order by valid_from_date, ticker
        ) as valid_until_date,
        lag(valid_from_date) over (
            partition by security_id order by valid_from_date, ticker
        ) as previous_valid_from_date,
        last_value(ticker) over (
            partition by security_id
            order by valid_from_date, ticker
            rows between unbounded preceding and unbounded following
        ) as current_ticker

    from events

)

select * from spans
