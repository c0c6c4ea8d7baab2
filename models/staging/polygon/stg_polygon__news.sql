with

source as (

    select * from {{ bronze_source('polygon_rest', 'news') }}

),

renamed as (

    select
        cast(id as string) as article_id,
        cast(published_utc as {{ type_instant() }}) as published_at,
        {{ local_date('cast(published_utc as ' ~ type_instant() ~ ')', 'America/New_York') }} as published_date,
        cast(title as string) as title,
        cast(author as string) as author,
        cast(description as string) as description,
        cast(article_url as string) as article_url,
        cast(publisher_name as string) as publisher_name,
        cast(keywords as {{ type_string_list() }}) as keywords,
        cast(tickers as {{ type_string_list() }}) as tickers,
        cast(_dlt_load_id as string) as load_id,
        coalesce({{ list_length('insights') }}, 0) as insight_count

    from source

),

ranked as (

    -- bronze keeps one row per id; a row left behind by an interrupted merge must not double an article
    select
        *,
        row_number() over (
            partition by article_id order by load_id desc nulls last, published_at desc nulls last
        ) as version_rank

    from renamed

),

latest as (

    select
        article_id,
        published_at,
        published_date,
        title,
        author,
        description,
        article_url,
        publisher_name,
        keywords,
        tickers,
        load_id,
        insight_count

    from ranked
    where version_rank = 1

)

select * from latest
