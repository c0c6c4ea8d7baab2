"""NYSE trading calendar (exchange_calendars XNYS): sessions, early closes, minute grids.

Everything that needs to know whether a date is a trading day asks this module, so holidays and half
days are never inferred from whatever dates happen to appear in data.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")
_CAL_START = "1990-01-02"


@lru_cache(maxsize=1)
def _calendar():
    import exchange_calendars as xcals

    # end: a year past today so the sandbox clock and scheduled refreshes can run ahead of real time
    end = (pd.Timestamp.today().normalize() + pd.DateOffset(years=2)).strftime("%Y-%m-%d")
    return xcals.get_calendar("XNYS", start=_CAL_START, end=end)


def _to_date(value: dt.date | str) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def sessions(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """NYSE sessions in [start, end], both inclusive."""
    start, end = _to_date(start), _to_date(end)
    if end < start:
        return []
    labels = _calendar().sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
    return [ts.date() for ts in labels]


def is_session(day: dt.date | str) -> bool:
    return _calendar().is_session(pd.Timestamp(_to_date(day)))


def previous_session(day: dt.date | str) -> dt.date:
    """The last session strictly before `day`."""
    cal = _calendar()
    ts = pd.Timestamp(_to_date(day))
    return (
        cal.date_to_session(ts, direction="previous").date()
        if not cal.is_session(ts)
        else cal.previous_session(ts).date()
    )


def next_session(day: dt.date | str) -> dt.date:
    """The first session strictly after `day`."""
    cal = _calendar()
    ts = pd.Timestamp(_to_date(day))
    return (
        cal.date_to_session(ts, direction="next").date()
        if not cal.is_session(ts)
        else cal.next_session(ts).date()
    )


def session_bounds(day: dt.date | str) -> tuple[dt.datetime, dt.datetime]:
    """Regular-hours open and close of a session as UTC datetimes (close is 13:00 ET on half days)."""
    cal = _calendar()
    ts = pd.Timestamp(_to_date(day))
    return cal.session_open(ts).to_pydatetime(), cal.session_close(ts).to_pydatetime()


def is_early_close(day: dt.date | str) -> bool:
    ts = pd.Timestamp(_to_date(day))
    return ts in _calendar().early_closes


def holidays(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """Weekdays in [start, end] on which NYSE is closed."""
    start, end = _to_date(start), _to_date(end)
    open_days = set(sessions(start, end))
    days = pd.bdate_range(start, end)
    return [d.date() for d in days if d.date() not in open_days]


def regular_minutes(day: dt.date | str) -> pd.DatetimeIndex:
    """Start of every regular-hours minute of a session, UTC (390 minutes, 210 on a half day)."""
    open_, close = session_bounds(day)
    return pd.date_range(open_, close, freq="1min", inclusive="left")
