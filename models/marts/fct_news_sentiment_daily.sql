{#-
    News per ticker and session it may first be used on (int_news_mentions): an article published at
    or after a session's close (or on a weekend or holiday) counts on the next session, so joining this
    mart to the same session's close-based features uses only articles that existed before that close.
-#}

with

mentions as (

    select * from {{ ref('int_news_mentions') }}
    where first_usable_session is not null

),

daily as (

    select
        ticker,
        first_usable_session as session_date,
        min(available_at) as first_available_at,
        max(available_at) as last_available_at,
        count(distinct article_id) as article_count,
        count(sentiment_score) as scored_article_count,
        avg(sentiment_score) as mean_sentiment_score,
        count(case when sentiment = 'positive' then 1 end) as positive_count,
        count(case when sentiment = 'negative' then 1 end) as negative_count,
        count(case when sentiment = 'neutral' then 1 end) as neutral_count

    from mentions
    group by ticker, first_usable_session

)

select * from daily
