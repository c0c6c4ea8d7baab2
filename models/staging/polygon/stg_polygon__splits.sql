with

source as (

    select * from {{ bronze_source('polygon', 'splits') }}

),

renamed as (

    select
        cast(id as string) as split_id,
        cast(ticker as string) as ticker,
        cast(execution_date as date) as execution_date,
        cast(split_from as double) as split_from,
        cast(split_to as double) as split_to,
        cast(_dlt_load_id as string) as load_id

    from source

)

select * from renamed
