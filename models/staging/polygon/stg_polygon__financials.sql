with

source as (

    select * from {{ bronze_source('polygon_rest', 'financials') }}

),

renamed as (

    select
        cast(filing_id as varchar) as filing_id,
        nullif(cast(ticker as varchar), '') as ticker,
        cast(cik as varchar) as cik,
        cast(timeframe as varchar) as timeframe,
        cast(fiscal_period as varchar) as fiscal_period,
        cast(fiscal_year as integer) as fiscal_year,
        cast(start_date as date) as period_start_date,
        cast(end_date as date) as period_end_date,
        cast(filing_date as date) as filing_date,
        cast(statement as varchar) as financial_statement,
        cast(line_item as varchar) as line_item,
        cast(label as varchar) as line_item_label,
        cast(value as double) as reported_value,
        cast(unit as varchar) as unit,
        cast(_dlt_load_id as varchar) as load_id

    from source

)

select * from renamed
