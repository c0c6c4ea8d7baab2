with

news_tickers as (

    select * from {{ ref('stg_polygon__news_tickers') }}

),

news_insights as (

    select * from {{ ref('stg_polygon__news_insights') }}

),

mentions as (

    -- every article that names the ticker, with the sentiment Polygon gave it for that ticker (if any)
    select
        news_tickers.ticker,
        news_tickers.published_date as news_date,
        news_tickers.article_id,
        news_insights.sentiment,
        news_insights.sentiment_score

    from news_tickers
    left join news_insights
        on
            news_tickers.article_id = news_insights.article_id
            and news_tickers.ticker = news_insights.ticker

),

daily as (

    select
        ticker,
        news_date,
        count(distinct article_id) as article_count,
        count(sentiment_score) as scored_article_count,
        avg(sentiment_score) as mean_sentiment_score,
        count(*) filter (where sentiment = 'positive') as positive_count,
        count(*) filter (where sentiment = 'negative') as negative_count,
        count(*) filter (where sentiment = 'neutral') as neutral_count

    from mentions
    group by ticker, news_date

)

select * from daily
