with

source as (

    select * from {{ bronze_source('polygon', 'ticker_events') }}

),

renamed as (

    select
        cast(id as string) as event_id,
        cast(ticker as string) as requested_ticker,
        cast(event_type as string) as event_type,
        cast(event_date as date) as event_date,
        cast(new_ticker as string) as new_ticker,
        cast(composite_figi as string) as composite_figi,
        cast(cik as string) as cik,
        cast(name as string) as company_name,
        cast(_dlt_load_id as string) as load_id

    from source

)

select * from renamed
