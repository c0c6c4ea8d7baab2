{#-
    Every (article, ticker) mention with when it became available and the first session it may be used
    on: an article is available at its publication time (`published_utc`), so one published at or after
    the close (16:00 New York, 13:00 on half days), on a weekend or a holiday counts on the next session.
-#}

with

news_tickers as (

    select * from {{ ref('stg_polygon__news_tickers') }}

),

news_insights as (

    select * from {{ ref('stg_polygon__news_insights') }}

),

sessions as (

    select * from {{ ref('int_session_availability') }}

),

ticker_history as (

    select * from {{ ref('int_ticker_history') }}

),

mentions as (

    -- news follows the security: a mention of LGCY before its rename counts for NEWC
    select
        {{ security_ticker('ticker_history', 'news_tickers.ticker') }} as ticker,
        news_tickers.article_id,
        news_tickers.published_at as available_at,
        news_tickers.published_date,
        news_insights.sentiment,
        news_insights.sentiment_score

    from news_tickers
    left join ticker_history
        on {{ security_ticker_join('ticker_history', 'news_tickers.ticker', 'news_tickers.published_date') }}
    left join news_insights
        on
            news_tickers.article_id = news_insights.article_id
            and news_tickers.ticker = news_insights.ticker

)

select
    mentions.ticker,
    mentions.article_id,
    mentions.available_at,
    mentions.published_date,
    sessions.session_date as first_usable_session,
    mentions.sentiment,
    mentions.sentiment_score

from mentions
left join sessions
    on
        mentions.available_at < sessions.available_until
        and (sessions.available_from is null or mentions.available_at >= sessions.available_from)
