with

source as (

    select * from {{ bronze_source('polygon', 'short_volume') }}

),

renamed as (

    select
        cast(ticker as string) as ticker,
        cast(date as date) as trade_date,
        cast(short_volume as bigint) as short_volume,
        cast(total_volume as bigint) as total_volume,
        cast(exempt_volume as bigint) as exempt_volume,
        cast(non_exempt_volume as bigint) as non_exempt_volume,
        cast(short_volume_ratio as double) as short_volume_ratio,
        cast(_dlt_load_id as string) as load_id

    from source

)

select * from renamed
