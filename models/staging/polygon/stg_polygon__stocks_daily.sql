with

source as (

    select * from {{ bronze_source('polygon', 'stocks_daily') }}

),

renamed as (

    select
        {{ flatfile_aggregate_columns() }}

    from source

)

select * from renamed
