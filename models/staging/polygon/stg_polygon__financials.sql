with

source as (

    select * from {{ bronze_source('polygon', 'financials') }}

),

renamed as (

    select
        cast(filing_id as string) as filing_id,
        nullif(cast(ticker as string), '') as ticker,
        cast(cik as string) as cik,
        cast(timeframe as string) as timeframe,
        cast(fiscal_period as string) as fiscal_period,
        cast(fiscal_year as integer) as fiscal_year,
        cast(start_date as date) as period_start_date,
        cast(end_date as date) as period_end_date,
        cast(filing_date as date) as filing_date,
        cast(statement as string) as financial_statement,
        cast(line_item as string) as line_item,
        cast(label as string) as line_item_label,
        cast(value as double) as reported_value,
        cast(unit as string) as unit,
        cast(_dlt_load_id as string) as load_id

    from source

)

select * from renamed
