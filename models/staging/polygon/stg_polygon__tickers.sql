with

source as (

    select * from {{ bronze_source('polygon', 'tickers') }}

),

renamed as (

    select
        cast(ticker as string) as ticker,
        cast(name as string) as company_name,
        cast(market as string) as market_type,
        cast(locale as string) as market_locale,
        cast(primary_exchange as string) as primary_exchange,
        cast(type as string) as ticker_type,
        cast(currency_name as string) as currency_name,
        cast(cik as string) as cik,
        cast(composite_figi as string) as composite_figi,
        cast(share_class_figi as string) as share_class_figi,
        cast(last_updated_utc as {{ type_instant() }}) as last_updated_at,
        cast(delisted_utc as {{ type_instant() }}) as delisted_at,
        cast(snapshot_date as date) as snapshot_date,
        cast(_dlt_load_id as string) as load_id,
        coalesce(cast(active as boolean), false) as is_active

    from source

),

ranked as (

    select
        *,
        row_number() over (
            partition by ticker
            order by snapshot_date desc nulls last, is_active desc, load_id desc nulls last
        ) as snapshot_rank

    from renamed

),

latest_snapshot as (

    -- bronze keeps one snapshot per load date; the latest one describes the ticker now
    select
        ticker,
        company_name,
        market_type,
        market_locale,
        primary_exchange,
        ticker_type,
        currency_name,
        cik,
        composite_figi,
        share_class_figi,
        last_updated_at,
        delisted_at,
        snapshot_date,
        load_id,
        is_active

    from ranked
    where snapshot_rank = 1

)

select * from latest_snapshot
