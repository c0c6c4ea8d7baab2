{#-
    Point-in-time short data per ticker and traded session: the latest short interest and short volume
    that had been published before that session's close.

    Short interest is published by FINRA after its settlement date, on a schedule Polygon does not
    return: the publication is taken as the `short_interest_publication_sessions`-th session after the
    settlement date (var, default 7, FINRA's usual lag), at 18:00 New York. Daily short volume is
    published at 18:00 New York on its trade date. Both are therefore first usable on the next session
    (int_session_availability). Ratios are computed from integer sums, so they are exact and the same
    on every engine and every build.
-#}

with

sessions as (

    select * from {{ ref('int_session_availability') }}

),

bars as (

    select
        ticker,
        session_date
    from {{ ref('int_stock_daily_bars') }}

),

ticker_history as (

    select * from {{ ref('int_ticker_history') }}

),

-- short data follows the security: filed under the ticker of its date, kept under the current one
short_interest as (

    select
        {{ security_ticker('ticker_history', 'raw_interest.ticker') }} as ticker,
        raw_interest.settlement_date,
        raw_interest.short_interest,
        raw_interest.avg_daily_volume,
        raw_interest.days_to_cover

    from {{ ref('stg_polygon__short_interest') }} as raw_interest
    left join ticker_history
        on {{ security_ticker_join('ticker_history', 'raw_interest.ticker', 'raw_interest.settlement_date') }}

),

short_volume as (

    select
        {{ security_ticker('ticker_history', 'raw_volume.ticker') }} as ticker,
        raw_volume.trade_date,
        raw_volume.short_volume,
        raw_volume.total_volume

    from {{ ref('stg_polygon__short_volume') }} as raw_volume
    left join ticker_history
        on {{ security_ticker_join('ticker_history', 'raw_volume.ticker', 'raw_volume.trade_date') }}

),

interest_published as (

    select
        short_interest.ticker,
        short_interest.settlement_date,
        short_interest.short_interest,
        short_interest.avg_daily_volume,
        short_interest.days_to_cover,
        published.evening_at as available_at

    from short_interest
    inner join sessions as settled
        on
            short_interest.settlement_date <= settled.session_date
            and (
                settled.previous_session_date is null
                or short_interest.settlement_date > settled.previous_session_date
            )
    inner join sessions as published
        on published.session_index = settled.session_index + {{ var('short_interest_publication_sessions', 7) }}

),

interest_usable as (

    select
        interest_published.*,
        usable.session_date as first_usable_session

    from interest_published
    inner join sessions as usable
        on
            interest_published.available_at < usable.available_until
            and (usable.available_from is null or interest_published.available_at >= usable.available_from)

),

interest_intervals as (

    select
        interest_usable.*,
        lead(interest_usable.first_usable_session) over (
            partition by interest_usable.ticker
            order by interest_usable.first_usable_session, interest_usable.settlement_date
        ) as next_usable_session

    from interest_usable

),

volume_windows as (

    select
        ticker,
        trade_date,
        short_volume,
        total_volume,
        sum(short_volume) over (
            partition by ticker order by trade_date rows between 19 preceding and current row
        ) as short_volume_20,
        sum(total_volume) over (
            partition by ticker order by trade_date rows between 19 preceding and current row
        ) as total_volume_20,
        count(*) over (
            partition by ticker order by trade_date rows between 19 preceding and current row
        ) as days_in_20

    from short_volume

),

volume_usable as (

    select
        volume_windows.*,
        traded.evening_at as available_at,
        usable.session_date as first_usable_session

    from volume_windows
    inner join sessions as traded on volume_windows.trade_date = traded.session_date
    inner join sessions as usable
        on
            traded.evening_at < usable.available_until
            and (usable.available_from is null or traded.evening_at >= usable.available_from)

),

volume_intervals as (

    select
        volume_usable.*,
        lead(volume_usable.first_usable_session) over (
            partition by volume_usable.ticker order by volume_usable.first_usable_session, volume_usable.trade_date
        ) as next_usable_session

    from volume_usable

),

joined as (

    select
        bars.ticker,
        bars.session_date,
        interest_intervals.settlement_date as short_interest_settlement_date,
        interest_intervals.available_at as short_interest_available_at,
        interest_intervals.short_interest,
        interest_intervals.avg_daily_volume as short_interest_avg_daily_volume,
        interest_intervals.days_to_cover,
        volume_intervals.trade_date as short_volume_date,
        volume_intervals.available_at as short_volume_available_at,
        volume_intervals.short_volume,
        volume_intervals.total_volume as short_volume_total_volume,
        case
            when volume_intervals.total_volume > 0
                then cast(volume_intervals.short_volume as double) / volume_intervals.total_volume
        end as short_volume_ratio,
        case
            when volume_intervals.days_in_20 = 20 and volume_intervals.total_volume_20 > 0
                then cast(volume_intervals.short_volume_20 as double) / volume_intervals.total_volume_20
        end as short_volume_ratio_20d

    from bars
    left join interest_intervals
        on
            bars.ticker = interest_intervals.ticker
            and bars.session_date >= interest_intervals.first_usable_session
            and (
                interest_intervals.next_usable_session is null
                or bars.session_date < interest_intervals.next_usable_session
            )
    left join volume_intervals
        on
            bars.ticker = volume_intervals.ticker
            and bars.session_date >= volume_intervals.first_usable_session
            and (
                volume_intervals.next_usable_session is null
                or bars.session_date < volume_intervals.next_usable_session
            )

)

select * from joined
where short_interest_settlement_date is not null or short_volume_date is not null
