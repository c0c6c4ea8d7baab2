with

source as (

    select * from {{ bronze_source('polygon', 'options_contracts') }}

),

renamed as (

    select
        cast(ticker as string) as contract_ticker,
        cast(underlying_ticker as string) as underlying_ticker,
        lower(cast(contract_type as string)) as contract_type,
        cast(expiration_date as date) as expiration_date,
        cast(strike_price as double) as strike_price,
        cast(shares_per_contract as double) as shares_per_contract,
        cast(exercise_style as string) as exercise_style,
        cast(primary_exchange as string) as primary_exchange,
        cast(_dlt_load_id as string) as load_id

    from source

)

select * from renamed
