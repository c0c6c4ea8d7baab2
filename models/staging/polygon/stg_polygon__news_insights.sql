with

news as (

    -- the latest loaded version of each article
    select * from {{ ref('base_polygon__news') }}

),

unnested as (

    -- one row per insight of the article
    select
        id,
        published_utc,
        {{ explode_list_with_position('insights', 'insight', 'insight_position') }}

    from news

),

renamed as (

    select
        cast(unnested.id as string) as article_id,
        cast(unnested.insight.ticker as string) as ticker,
        cast(unnested.insight.sentiment_reasoning as string) as sentiment_reasoning,
        cast(unnested.published_utc as {{ type_instant() }}) as published_at,
        {{ local_date('cast(unnested.published_utc as ' ~ type_instant() ~ ')', 'America/New_York') }}
            as published_date,
        unnested.insight_position,
        lower(cast(unnested.insight.sentiment as string)) as sentiment,
        case lower(cast(unnested.insight.sentiment as string))
            when 'positive' then cast(1 as double)
            when 'neutral' then cast(0 as double)
            when 'negative' then cast(-1 as double)
        end as sentiment_score

    from unnested

),

ranked_per_ticker as (

    select
        *,
        row_number() over (partition by article_id, ticker order by insight_position) as insight_rank

    from renamed

),

first_per_ticker as (

    -- one insight per article and ticker (the first, should Polygon ever repeat a ticker)
    select
        article_id,
        ticker,
        sentiment_reasoning,
        published_at,
        published_date,
        sentiment,
        sentiment_score

    from ranked_per_ticker
    where insight_rank = 1

)

select * from first_per_ticker
