{#-
    Every option contract seen in bronze (day aggregates or the contracts reference), parsed from its OCC
    symbol: `O:` + root + YYMMDD expiration + C/P + strike x 1000 in 8 digits. The suffix has a fixed
    width, so the root is everything between `O:` and the last 15 characters; it may contain digits and
    differ from the underlying (SPXW -> SPX, AAPL1 after an adjustment). The underlying comes from the
    contract's reference row when loaded, else from another contract with the same root, else the root.
-#}

with

option_bars as (

    select * from {{ ref('stg_polygon__options_daily') }}

),

contract_references as (

    select * from {{ ref('stg_polygon__options_contracts') }}

),

ranked_references as (

    select
        *,
        row_number() over (partition by contract_ticker order by load_id desc nulls last) as version_rank

    from contract_references

),

latest_references as (

    select
        contract_ticker,
        underlying_ticker,
        shares_per_contract,
        exercise_style

    from ranked_references
    where version_rank = 1

),

traded_contracts as (

    select distinct contract_ticker

    from option_bars

),

all_contracts as (

    select contract_ticker from traded_contracts

    union

    select contract_ticker from latest_references

),

parsed as (

    select
        contract_ticker,
        regexp_extract(contract_ticker, '^O:([A-Z0-9.]+)([0-9]{6})([CP])([0-9]{8})$', 1) as occ_root,
        regexp_extract(contract_ticker, '^O:([A-Z0-9.]+)([0-9]{6})([CP])([0-9]{8})$', 2) as expiration_digits,
        regexp_extract(contract_ticker, '^O:([A-Z0-9.]+)([0-9]{6})([CP])([0-9]{8})$', 3) as type_letter,
        regexp_extract(contract_ticker, '^O:([A-Z0-9.]+)([0-9]{6})([CP])([0-9]{8})$', 4) as strike_digits

    from all_contracts

),

root_underlyings as (

    -- a root maps to an underlying only when the reference names exactly one for it
    select
        regexp_extract(contract_ticker, '^O:([A-Z0-9.]+)([0-9]{6})([CP])([0-9]{8})$', 1) as occ_root,
        min(underlying_ticker) as underlying_ticker

    from latest_references
    where underlying_ticker is not null
    group by 1
    having count(distinct underlying_ticker) = 1

),

final as (

    select
        parsed.contract_ticker,
        nullif(parsed.occ_root, '') as occ_root,
        coalesce(latest_references.underlying_ticker, root_underlyings.underlying_ticker, nullif(parsed.occ_root, ''))
            as underlying_ticker,
        case
            when latest_references.underlying_ticker is not null then 'contract_reference'
            when root_underlyings.underlying_ticker is not null then 'root_reference'
            when parsed.occ_root != '' then 'occ_root'
        end as underlying_source,
        case
            when parsed.expiration_digits != '' then {{ date_from_yyyymmdd("'20' || parsed.expiration_digits") }}
        end as expiration_date,
        case parsed.type_letter
            when 'C' then 'call'
            when 'P' then 'put'
        end as contract_type,
        case
            when parsed.strike_digits != '' then cast(parsed.strike_digits as bigint) / cast(1000 as double)
        end as strike_price,
        latest_references.shares_per_contract,
        latest_references.exercise_style,
        parsed.occ_root != '' as has_valid_occ_symbol,
        latest_references.contract_ticker is not null as has_reference

    from parsed
    left join latest_references on parsed.contract_ticker = latest_references.contract_ticker
    left join root_underlyings on parsed.occ_root = root_underlyings.occ_root

)

select * from final
