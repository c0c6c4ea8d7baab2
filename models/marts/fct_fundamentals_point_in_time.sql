{#-
    Point-in-time fundamentals: what an investor could know on each day, and nothing more.

    A reported value becomes visible on the first session after it became available: EDGAR's acceptance
    time where Polygon gives it, else the evening of the filing date (int_session_availability: at or
    after the close counts on the next session), so `valid_from_date` is a session and a filing accepted
    at 16:05 is visible from the next one. On any date, the visible value of a line item
    is the one of the latest reporting period among the filings made so far (a later amendment of that
    period replaces it; an amendment of an older period does not push a newer period out). Each row is
    one interval of visibility: join with `as_of_date >= valid_from_date and (as_of_date <
    valid_to_date or valid_to_date is null)`.
-#}

with

financials as (

    select * from {{ ref('stg_polygon__financials') }}

),

filings as (

    select * from {{ ref('stg_polygon__financial_filings') }}

),

sessions as (

    select * from {{ ref('int_session_availability') }}

),

ticker_history as (

    select * from {{ ref('int_ticker_history') }}

),

filed as (

    -- when each filing became available: its acceptance time, else the evening of its filing date;
    -- filed under the security's current ticker (fundamentals follow a renamed ticker)
    select
        {{ security_ticker('ticker_history', 'financials.ticker') }} as ticker,
        financials.filing_id,
        financials.timeframe,
        financials.financial_statement,
        financials.line_item,
        financials.fiscal_year,
        financials.fiscal_period,
        financials.period_end_date,
        financials.filing_date,
        financials.reported_value,
        financials.unit,
        coalesce(filings.accepted_at, filing_day.evening_at) as available_at

    from financials
    left join ticker_history
        on {{ security_ticker_join('ticker_history', 'financials.ticker', 'financials.filing_date') }}
    left join filings
        on financials.filing_id = filings.filing_id and financials.ticker = filings.ticker
    left join sessions as filing_day
        on
            financials.filing_date <= filing_day.session_date
            and (
                filing_day.previous_session_date is null
                or financials.filing_date > filing_day.previous_session_date
            )

),

usable as (

    select
        filed.*,
        usable_session.session_date as usable_date

    from filed
    inner join sessions as usable_session
        on
            filed.available_at < usable_session.available_until
            and (usable_session.available_from is null or filed.available_at >= usable_session.available_from)

),

versions as (

    -- one version per period and filing date (a filing listed twice counts once)
    select
        ticker,
        timeframe,
        financial_statement,
        line_item,
        fiscal_year,
        fiscal_period,
        period_end_date,
        filing_date,
        usable_date,
        any_value(available_at) as available_at,
        any_value(reported_value) as reported_value,
        any_value(unit) as unit,
        any_value(filing_id) as filing_id

    from usable
    where ticker is not null and filing_date is not null and period_end_date is not null
    group by
        ticker,
        timeframe,
        financial_statement,
        line_item,
        fiscal_year,
        fiscal_period,
        period_end_date,
        filing_date,
        usable_date

),

running as (

    -- at each session a filing first became usable on: the newest period filed so far, in its latest
    -- filed version (a running max_by over the filings usable up to and including that session)
    select
        ticker,
        timeframe,
        financial_statement,
        line_item,
        usable_date as valid_from_date,
        max_by(
            {{ struct_of({
                'fiscal_year': 'fiscal_year',
                'fiscal_period': 'fiscal_period',
                'period_end_date': 'period_end_date',
                'filing_date': 'filing_date',
                'available_at': 'available_at',
                'filing_id': 'filing_id',
                'reported_value': 'reported_value',
                'unit': 'unit'
            }) }},
            {{ struct_of({
                'period_end_date': 'period_end_date', 'filing_date': 'filing_date', 'filing_id': 'filing_id'
            }) }}
        ) over (
            partition by ticker, timeframe, financial_statement, line_item
            order by usable_date
            range between unbounded preceding and current row
        ) as visible_version

    from versions

),

visible as (

    select distinct
        running.ticker,
        running.timeframe,
        running.financial_statement,
        running.line_item,
        running.valid_from_date,
        visible_version.fiscal_year,
        visible_version.fiscal_period,
        visible_version.period_end_date,
        visible_version.filing_date,
        visible_version.available_at,
        visible_version.filing_id,
        visible_version.reported_value,
        visible_version.unit

    from running

),

with_previous as (

    select
        *,
        lag(filing_id) over (
            partition by ticker, timeframe, financial_statement, line_item order by valid_from_date
        ) as previous_filing_id

    from visible

),

changes as (

    -- keep a day only when the visible version changes (an older period's amendment changes nothing)
    select
        ticker,
        timeframe,
        financial_statement,
        line_item,
        valid_from_date,
        fiscal_year,
        fiscal_period,
        period_end_date,
        filing_date,
        available_at,
        filing_id,
        reported_value,
        unit

    from with_previous
    where previous_filing_id is distinct from filing_id

),

intervals as (

    select
        ticker,
        timeframe,
        financial_statement,
        line_item,
        fiscal_year,
        fiscal_period,
        period_end_date,
        filing_date,
        available_at,
        valid_from_date,
        reported_value,
        unit,
        filing_id,
        lead(valid_from_date) over (
            partition by ticker, timeframe, financial_statement, line_item order by valid_from_date
        ) as valid_to_date

    from changes

)

select * from intervals
