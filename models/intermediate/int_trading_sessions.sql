{#-
    NYSE sessions with their regular-hours bounds, from the exchange calendar rather than from the data:
    minute features need each session's real open and close (13:00 on half days), which SQL cannot
    derive. The loaders write the calendar to bronze (`loaders.calendar.write_sessions_file`).
-#}

with

sessions as (

    select * from {{ ref('stg_exchange_calendar__trading_sessions') }}

),

with_minutes as (

    select
        session_date,
        regular_open_at,
        regular_close_at,
        cast({{ minutes_between('regular_open_at', 'regular_close_at') }} as integer) as regular_minutes

    from sessions

),

final as (

    select
        *,
        regular_minutes < 390 as is_early_close

    from with_minutes

)

select * from final
