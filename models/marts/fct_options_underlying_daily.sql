{{ guard_retained_history(ref('stg_polygon__options_daily')) }}

{#-
    Option activity per underlying and session. Built from the contract mart; each session carries a
    fingerprint of the contract rows it was built from, and an incremental run rebuilds the sessions
    whose fingerprint changed (new, re-loaded or re-mapped contracts).
-#}

with

contract_rows as (

    select * from {{ ref('fct_option_contracts_daily') }}

),

session_fingerprints as (

    select
        session_date,
        bit_xor(
            {{ row_hash(['contract_ticker', 'underlying_ticker', 'contract_type', 'volume', 'source_load_id']) }}
        ) as source_fingerprint

    from contract_rows
    group by session_date

),

{% if is_incremental() %}

stored_fingerprints as (

    select
        session_date,
        max(source_fingerprint) as source_fingerprint

    from {{ this }}
    group by session_date

),

sessions_to_build as (

    select session_fingerprints.session_date

    from session_fingerprints
    left join stored_fingerprints on session_fingerprints.session_date = stored_fingerprints.session_date
    where session_fingerprints.source_fingerprint is distinct from stored_fingerprints.source_fingerprint

),

rows_to_build as (

    select contract_rows.*

    from contract_rows
    where contract_rows.session_date in (select sessions_to_build.session_date from sessions_to_build)

),

{% else %}

rows_to_build as (

    select * from contract_rows

),

{% endif %}

per_underlying as (

    select
        underlying_ticker,
        session_date,
        coalesce(sum(volume) filter (where contract_type = 'call'), 0) as call_volume,
        coalesce(sum(volume) filter (where contract_type = 'put'), 0) as put_volume,
        sum(volume) as total_volume,
        count(*) filter (where volume > 0) as contracts_traded,
        count(*) filter (where volume > 0 and contract_type = 'call') as calls_traded,
        count(*) filter (where volume > 0 and contract_type = 'put') as puts_traded,
        cast(sum(transactions) as bigint) as transactions

    from rows_to_build
    where underlying_ticker is not null
    group by underlying_ticker, session_date

),

final as (

    select
        per_underlying.underlying_ticker,
        per_underlying.session_date,
        per_underlying.call_volume,
        per_underlying.put_volume,
        per_underlying.total_volume,
        per_underlying.put_volume / nullif(per_underlying.call_volume, 0) as put_call_ratio,
        per_underlying.contracts_traded,
        per_underlying.calls_traded,
        per_underlying.puts_traded,
        per_underlying.transactions,
        session_fingerprints.source_fingerprint

    from per_underlying
    inner join session_fingerprints on per_underlying.session_date = session_fingerprints.session_date

)

select * from final
