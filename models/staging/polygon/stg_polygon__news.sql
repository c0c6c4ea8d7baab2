with

source as (

    select * from {{ bronze_source('polygon_rest', 'news') }}

),

renamed as (

    select
        cast(id as varchar) as article_id,
        cast(published_utc as timestamp with time zone) as published_at,
        cast(timezone('America/New_York', cast(published_utc as timestamp with time zone)) as date) as published_date,
        cast(title as varchar) as title,
        cast(author as varchar) as author,
        cast(description as varchar) as description,
        cast(article_url as varchar) as article_url,
        cast(publisher_name as varchar) as publisher_name,
        cast(keywords as varchar[]) as keywords,
        cast(tickers as varchar[]) as tickers,
        cast(_dlt_load_id as varchar) as load_id,
        coalesce(len(insights), 0) as insight_count

    from source

),

latest as (

    -- bronze keeps one row per id; a row left behind by an interrupted merge must not double an article
    select *
    from renamed
    qualify row_number() over (partition by article_id order by load_id desc, published_at desc) = 1

)

select * from latest
