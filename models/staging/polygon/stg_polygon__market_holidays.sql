with

source as (

    select * from {{ bronze_source('polygon_rest', 'market_holidays') }}

),

renamed as (

    select
        cast(exchange as varchar) as exchange,
        cast(date as date) as holiday_date,
        cast(name as varchar) as holiday_name,
        cast(open_at as timestamp with time zone) as open_at,
        cast(close_at as timestamp with time zone) as close_at,
        cast(_dlt_load_id as varchar) as load_id,
        lower(cast(status as varchar)) as status,
        lower(cast(status as varchar)) = 'early-close' as is_early_close

    from source

)

select * from renamed
