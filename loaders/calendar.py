"""NYSE trading calendar (exchange_calendars XNYS): sessions, early closes, minute grids.

Everything that needs to know whether a date is a trading day asks this module, so holidays and half
days are never inferred from whatever dates happen to appear in data.

Session dates alone (`sessions`, `is_session`, `previous_session`, `next_session`) come from a list
that exchange_calendars computed once and this module keeps in `$QM_DATA_DIR/cache/`, keyed by the
exchange_calendars version and the calendar's end: importing pandas and exchange_calendars and building
the calendar costs about 0.6 CPU-seconds, more than a daily ingest's own work on a small file.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from loaders.landing import atomic_write

if TYPE_CHECKING:
    import pandas as pd

NEW_YORK = ZoneInfo("America/New_York")
_CAL_START = "1990-01-02"
_CACHE_FORMAT = 1


def _calendar_end() -> str:
    """Two years past today, so the sandbox clock and scheduled refreshes can run ahead of real time."""
    today = dt.date.today()
    return dt.date(today.year + 2, today.month, min(today.day, 28)).isoformat()


@lru_cache(maxsize=1)
def _calendar():
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS", start=_CAL_START, end=_calendar_end())


def _cache_path() -> Path:
    from importlib.metadata import version

    data_dir = Path(os.environ.get("QM_DATA_DIR") or "./data").expanduser()
    name = f"nyse-sessions-v{_CACHE_FORMAT}-xcals{version('exchange_calendars')}-{_calendar_end()}.txt"
    return data_dir / "cache" / name


@lru_cache(maxsize=1)
def _session_days() -> tuple[dt.date, ...]:
    """Every session from _CAL_START to the calendar's end, from the cache file or computed (and cached)."""
    path = _cache_path()
    try:
        days = tuple(dt.date.fromisoformat(line) for line in path.read_text().split())
        if days:
            return days
    except (OSError, ValueError):  # absent, unreadable or torn: compute it again
        pass
    cal = _calendar()
    days = tuple(ts.date() for ts in cal.sessions)
    with contextlib.suppress(OSError):  # a read-only data dir only loses the speed-up
        atomic_write(path, "".join(f"{d.isoformat()}\n" for d in days), durable=False)
    return days


def _index(day: dt.date) -> int:
    """Position of `day` among the sessions (bisect left); ValueError outside the calendar's span."""
    days = _session_days()
    if not days[0] <= day <= days[-1]:
        raise ValueError(f"{day} is outside the NYSE calendar's span {days[0]}..{days[-1]}")
    return bisect.bisect_left(days, day)


def _to_date(value: dt.date | str) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def sessions(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """NYSE sessions in [start, end], both inclusive."""
    start, end = _to_date(start), _to_date(end)
    if end < start:
        return []
    days = _session_days()
    if start < days[0] or end > days[-1]:  # outside the span: exchange_calendars says what is wrong
        import pandas as pd

        labels = _calendar().sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
        return [ts.date() for ts in labels]
    return list(days[bisect.bisect_left(days, start) : bisect.bisect_right(days, end)])


def is_session(day: dt.date | str) -> bool:
    day = _to_date(day)
    days = _session_days()
    i = _index(day)
    return i < len(days) and days[i] == day


def previous_session(day: dt.date | str) -> dt.date:
    """The last session strictly before `day`."""
    i = _index(_to_date(day))
    if i == 0:
        raise ValueError(f"no NYSE session before {day} in the calendar")
    return _session_days()[i - 1]


def next_session(day: dt.date | str) -> dt.date:
    """The first session strictly after `day`."""
    day = _to_date(day)
    days = _session_days()
    i = bisect.bisect_right(days, day)
    if i >= len(days) or not days[0] <= day:
        raise ValueError(f"no NYSE session after {day} in the calendar span {days[0]}..{days[-1]}")
    return days[i]


def session_bounds(day: dt.date | str) -> tuple[dt.datetime, dt.datetime]:
    """Regular-hours open and close of a session as UTC datetimes (close is 13:00 ET on half days)."""
    import pandas as pd

    cal = _calendar()
    ts = pd.Timestamp(_to_date(day))
    return cal.session_open(ts).to_pydatetime(), cal.session_close(ts).to_pydatetime()


def is_early_close(day: dt.date | str) -> bool:
    import pandas as pd

    ts = pd.Timestamp(_to_date(day))
    return ts in _calendar().early_closes


def holidays(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """Weekdays in [start, end] on which NYSE is closed."""
    start, end = _to_date(start), _to_date(end)
    open_days = set(sessions(start, end))
    weekdays = (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    return [d for d in weekdays if d.weekday() < 5 and d not in open_days]


def regular_minutes(day: dt.date | str) -> pd.DatetimeIndex:
    """Start of every regular-hours minute of a session, UTC (390 minutes, 210 on a half day)."""
    import pandas as pd

    open_, close = session_bounds(day)
    return pd.date_range(open_, close, freq="1min", inclusive="left")


# Bronze table of every NYSE session with its regular-hours bounds, written by the loaders so dbt models
# on any engine read the exchange calendar as data (SQL cannot know the half days).
SESSIONS_DATASET = "trading_sessions"
SESSIONS_FILE = "trading_sessions.parquet"


def sessions_table(start: dt.date | str, end: dt.date | str):
    """Sessions in [start, end] with their regular-hours open and close (UTC) as an Arrow table."""
    import pandas as pd
    import pyarrow as pa

    schedule = _calendar().schedule.loc[pd.Timestamp(_to_date(start)) : pd.Timestamp(_to_date(end))]
    return pa.table(
        {
            "session_date": pa.array(schedule.index.date, pa.date32()),
            "regular_open_at": pa.array(schedule["open"].dt.as_unit("us"), pa.timestamp("us", tz="UTC")),
            "regular_close_at": pa.array(schedule["close"].dt.as_unit("us"), pa.timestamp("us", tz="UTC")),
        }
    )


_SESSIONS_STAMP = b"quantmini.calendar"


def write_sessions_file(bronze_dir: str | Path, today: dt.date | None = None) -> Path:
    """Write ``<bronze>/trading_sessions/trading_sessions.parquet``: every session from 1990 through the
    end of next year. The file carries the exchange_calendars version and span it was made from and is
    rewritten (atomically) only when they change (a new year, a new exchange_calendars release), so an
    ingest pays one footer read, not a calendar build; returns the file's path."""
    from importlib.metadata import version

    import pyarrow.parquet as pq

    today = today or dt.date.today()
    last = dt.date(today.year + 1, 12, 31)
    stamp = f"xcals{version('exchange_calendars')}:{_CAL_START}..{last}".encode()
    folder = Path(bronze_dir) / SESSIONS_DATASET
    path = folder / SESSIONS_FILE
    try:
        if (pq.read_schema(path).metadata or {}).get(_SESSIONS_STAMP) == stamp:
            return path
    except (OSError, ValueError):  # absent or unreadable: written below
        pass
    table = sessions_table(_CAL_START, min(last, _session_days()[-1]))
    table = table.replace_schema_metadata({_SESSIONS_STAMP: stamp})
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{SESSIONS_FILE}.{os.getpid()}.tmp"
    pq.write_table(table, partial, compression="zstd")
    os.replace(partial, path)
    return path
