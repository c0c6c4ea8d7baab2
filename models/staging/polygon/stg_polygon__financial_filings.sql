{#- One row per filing and ticker: when it was filed and when EDGAR accepted it (UTC). -#}

with

source as (

    select * from {{ bronze_source('polygon', 'financial_filings') }}

),

ranked as (

    select
        cast(filing_id as string) as filing_id,
        nullif(cast(ticker as string), '') as ticker,
        cast(filing_date as date) as filing_date,
        cast(acceptance_datetime as {{ type_instant() }}) as accepted_at,
        cast(_dlt_load_id as string) as load_id,
        row_number() over (
            partition by filing_id, ticker order by _dlt_load_id desc
        ) as load_rank

    from source

)

select
    filing_id,
    ticker,
    filing_date,
    accepted_at,
    load_id

from ranked
where load_rank = 1
