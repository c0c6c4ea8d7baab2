with

news as (

    -- the latest loaded version of each article
    select * from {{ ref('base_polygon__news') }}

),

unnested as (

    -- one row per ticker the article names
    select
        id,
        published_utc,
        {{ explode_list('tickers', 'ticker') }}

    from news

),

renamed as (

    select distinct
        cast(id as string) as article_id,
        cast(ticker as string) as ticker,
        cast(published_utc as {{ type_instant() }}) as published_at,
        {{ local_date('cast(published_utc as ' ~ type_instant() ~ ')', 'America/New_York') }} as published_date

    from unnested

)

select * from renamed
