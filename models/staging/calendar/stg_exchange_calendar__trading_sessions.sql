with

source as (

    select * from {{ bronze_source('exchange_calendar', 'trading_sessions') }}

),

renamed as (

    select
        cast(session_date as date) as session_date,
        cast(regular_open_at as {{ type_instant() }}) as regular_open_at,
        cast(regular_close_at as {{ type_instant() }}) as regular_close_at

    from source

)

select * from renamed
