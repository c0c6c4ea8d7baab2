with

news as (

    -- the latest loaded version of each article
    select * from {{ ref('base_polygon__news') }}

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

    from news

)

select * from renamed
