with

source as (

    select * from {{ bronze_source('polygon', 'market_holidays') }}

),

renamed as (

    select
        cast(exchange as string) as exchange,
        cast(date as date) as holiday_date,
        cast(name as string) as holiday_name,
        cast(open_at as {{ type_instant() }}) as open_at,
        cast(close_at as {{ type_instant() }}) as close_at,
        cast(_dlt_load_id as string) as load_id,
        lower(cast(status as string)) as status,
        lower(cast(status as string)) = 'early-close' as is_early_close

    from source

)

select * from renamed
