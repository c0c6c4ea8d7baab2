{#-
    Point-in-time fundamentals: what an investor could know on each day, and nothing more.

    A reported value becomes visible on its filing date. On any date, the visible value of a line item
    is the one of the latest reporting period among the filings made so far (a later amendment of that
    period replaces it; an amendment of an older period does not push a newer period out). Each row is
    one interval of visibility: join with `as_of_date >= valid_from_date and (as_of_date <
    valid_to_date or valid_to_date is null)`.
-#}

with

financials as (

    select * from {{ ref('stg_polygon__financials') }}

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
        any_value(reported_value) as reported_value,
        any_value(unit) as unit,
        any_value(filing_id) as filing_id

    from financials
    where ticker is not null and filing_date is not null and period_end_date is not null
    group by
        ticker,
        timeframe,
        financial_statement,
        line_item,
        fiscal_year,
        fiscal_period,
        period_end_date,
        filing_date

),

running as (

    -- at each filing day: the newest period filed so far, in its latest filed version
    -- (a running max_by over the filings up to and including that day)
    select
        ticker,
        timeframe,
        financial_statement,
        line_item,
        filing_date as valid_from_date,
        max_by(
            {{ struct_of({
                'fiscal_year': 'fiscal_year',
                'fiscal_period': 'fiscal_period',
                'period_end_date': 'period_end_date',
                'filing_date': 'filing_date',
                'filing_id': 'filing_id',
                'reported_value': 'reported_value',
                'unit': 'unit'
            }) }},
            {{ struct_of({
                'period_end_date': 'period_end_date', 'filing_date': 'filing_date', 'filing_id': 'filing_id'
            }) }}
        ) over (
            partition by ticker, timeframe, financial_statement, line_item
            order by filing_date
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
