{#- Typed, renamed columns of a flat-file aggregate bar (the bronze contract in docs/architecture.md),
    shared by the four flat-file staging models. `ticker_name` is `contract_ticker` for options. -#}
{% macro flatfile_aggregate_columns(ticker_name='ticker') %}
        cast(ticker as string) as {{ ticker_name }},
        cast(session_date as date) as session_date,
        cast(window_start as {{ type_instant() }}) as bar_start_at,
        cast(open as double) as open,
        cast(high as double) as high,
        cast(low as double) as low,
        cast(close as double) as close,
        cast(volume as double) as volume,
        cast(transactions as bigint) as transactions,
        cast(_source_key as string) as source_key,
        cast(_source_etag as string) as source_etag,
        cast(_dlt_load_id as string) as load_id
{%- endmacro %}
