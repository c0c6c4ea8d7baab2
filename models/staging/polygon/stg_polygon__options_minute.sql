with

source as (

    select * from {{ bronze_source('polygon', 'options_minute') }}

),

renamed as (

    select
        {{ flatfile_aggregate_columns('contract_ticker') }}

    from source

)

select * from renamed
