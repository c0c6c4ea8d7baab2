with

source as (

    select * from {{ bronze_source('polygon_rest', 'tickers') }}

),

renamed as (

    select
        cast(ticker as varchar) as ticker,
        cast(name as varchar) as company_name,
        cast(market as varchar) as market_type,
        cast(locale as varchar) as market_locale,
        cast(primary_exchange as varchar) as primary_exchange,
        cast(type as varchar) as ticker_type,
        cast(currency_name as varchar) as currency_name,
        cast(cik as varchar) as cik,
        cast(composite_figi as varchar) as composite_figi,
        cast(share_class_figi as varchar) as share_class_figi,
        cast(last_updated_utc as timestamp with time zone) as last_updated_at,
        cast(delisted_utc as timestamp with time zone) as delisted_at,
        cast(snapshot_date as date) as snapshot_date,
        cast(_dlt_load_id as varchar) as load_id,
        coalesce(cast(active as boolean), false) as is_active

    from source

),

latest_snapshot as (

    -- bronze keeps one snapshot per load date; the latest one describes the ticker now
    select *
    from renamed
    qualify row_number() over (partition by ticker order by snapshot_date desc, is_active desc, load_id desc) = 1

)

select * from latest_snapshot
