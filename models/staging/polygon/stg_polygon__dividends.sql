with

source as (

    select * from {{ bronze_source('polygon', 'dividends') }}

),

renamed as (

    select
        cast(id as string) as dividend_id,
        cast(ticker as string) as ticker,
        cast(ex_dividend_date as date) as ex_dividend_date,
        cast(cash_amount as double) as cash_amount,
        cast(currency as string) as currency,
        cast(dividend_type as string) as dividend_type,
        cast(frequency as bigint) as frequency,
        cast(declaration_date as date) as declaration_date,
        cast(record_date as date) as record_date,
        cast(pay_date as date) as pay_date,
        cast(_dlt_load_id as string) as load_id

    from source

)

select * from renamed
