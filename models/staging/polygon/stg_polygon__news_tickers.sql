with

source as (

    select * from {{ bronze_source('polygon_rest', 'news') }}

),

latest as (

    select *
    from source
    qualify row_number() over (partition by id order by _dlt_load_id desc, published_utc desc) = 1

),

renamed as (

    select distinct
        cast(id as varchar) as article_id,
        cast(unnest(tickers) as varchar) as ticker,
        cast(published_utc as timestamp with time zone) as published_at,
        cast(timezone('America/New_York', cast(published_utc as timestamp with time zone)) as date) as published_date

    from latest

)

select * from renamed
