with

source as (

    select * from {{ bronze_source('polygon_rest', 'news') }}

),

ranked as (

    select
        id,
        published_utc,
        tickers,
        row_number() over (
            partition by id order by _dlt_load_id desc nulls last, published_utc desc nulls last
        ) as version_rank

    from source

),

unnested as (

    -- the latest version of each article, one row per ticker it names
    select
        id,
        published_utc,
        {{ explode_list('tickers', 'ticker') }}

    from ranked
    where version_rank = 1

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
