with

source as (

    select * from {{ bronze_source('polygon_rest', 'ticker_events') }}

),

renamed as (

    select
        cast(id as varchar) as event_id,
        cast(ticker as varchar) as requested_ticker,
        cast(event_type as varchar) as event_type,
        cast(event_date as date) as event_date,
        cast(new_ticker as varchar) as new_ticker,
        cast(composite_figi as varchar) as composite_figi,
        cast(cik as varchar) as cik,
        cast(name as varchar) as company_name,
        cast(_dlt_load_id as varchar) as load_id

    from source

)

select * from renamed
