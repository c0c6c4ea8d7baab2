{#-
    The as-of rule in one place: which session a fact available at a given instant may first be used on.

    A fact available before a session's regular close (16:00 New York, 13:00 on half days) may be used
    on that session; one available at or after the close, on a weekend or a holiday, on the next
    session. So each session owns the half-open window [previous session's close, its own close): join
    a fact with `available_at >= available_from and available_at < available_until` (the first session's
    window has no start). `evening_at` is 18:00 New York of the session (the open is always 09:30, so
    it is the open plus 8.5 hours in UTC, with no time-zone function): when FINRA publishes a day's
    files, used for the short data. `session_index` numbers the sessions, for "n sessions later"; a
calendar date maps to the first session on or after it with `day > previous_session_date and day <=
session_date`.
-#}

with

sessions as (

    select * from {{ ref('int_trading_sessions') }}

),

windows as (

    select
        session_date,
        row_number() over (order by session_date) as session_index,
        lag(session_date) over (order by session_date) as previous_session_date,
        lag(regular_close_at) over (order by session_date) as available_from,
        regular_close_at as available_until,
        regular_open_at + interval '510' minute as evening_at

    from sessions

)

select * from windows
