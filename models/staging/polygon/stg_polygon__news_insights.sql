with

source as (

    select * from {{ bronze_source('polygon_rest', 'news') }}

),

latest as (

    select *
    from source
    qualify row_number() over (partition by id order by _dlt_load_id desc, published_utc desc) = 1

),

unnested as (

    select
        id,
        published_utc,
        unnest(insights) as insight,
        generate_subscripts(insights, 1) as insight_position

    from latest

),

renamed as (

    select
        cast(unnested.id as varchar) as article_id,
        cast(insight.ticker as varchar) as ticker,
        cast(insight.sentiment_reasoning as varchar) as sentiment_reasoning,
        cast(unnested.published_utc as timestamp with time zone) as published_at,
        cast(timezone('America/New_York', cast(unnested.published_utc as timestamp with time zone)) as date)
            as published_date,
        unnested.insight_position,
        lower(cast(insight.sentiment as varchar)) as sentiment,
        case lower(cast(insight.sentiment as varchar))
            when 'positive' then 1.0
            when 'neutral' then 0.0
            when 'negative' then -1.0
        end as sentiment_score

    from unnested

),

first_per_ticker as (

    -- one insight per article and ticker (the first, should Polygon ever repeat a ticker)
    select * exclude (insight_position)
    from renamed
    qualify row_number() over (partition by article_id, ticker order by insight_position) = 1

)

select * from first_per_ticker
