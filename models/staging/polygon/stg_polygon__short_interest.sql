with

source as (

    select * from {{ bronze_source('polygon', 'short_interest') }}

),

renamed as (

    select
        cast(ticker as string) as ticker,
        cast(settlement_date as date) as settlement_date,
        cast(short_interest as bigint) as short_interest,
        cast(avg_daily_volume as bigint) as avg_daily_volume,
        cast(days_to_cover as double) as days_to_cover,
        cast(_dlt_load_id as string) as load_id

    from source

)

select * from renamed
