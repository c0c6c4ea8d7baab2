with

source as (

    select * from {{ bronze_source('polygon', 'news') }}

),

ranked as (

    -- bronze keeps one row per id; a row left behind by an interrupted merge must not double an article
    select
        *,
        row_number() over (
            partition by id order by _dlt_load_id desc nulls last, published_utc desc nulls last
        ) as version_rank

    from source

),

latest as (

    select
        id,
        published_utc,
        title,
        author,
        description,
        article_url,
        publisher_name,
        keywords,
        tickers,
        insights,
        _dlt_load_id

    from ranked
    where version_rank = 1

)

select * from latest
