"""HTTP behaviour and defaults of the REST datasets; their endpoints and tables are in loaders/datasets.py."""

from __future__ import annotations

import datetime as dt
import os

from loaders import datasets as registry
from loaders.datasets import Dataset, Endpoint, Table

__all__ = ["DATASETS", "Dataset", "Endpoint", "Table"]

# Default first date when neither -s nor --backfill-years is given and no forward cursor exists yet.
DEFAULT_LOOKBACK_YEARS = 2
# Requests per second when --rate-limit is not given: Polygon's paid plans allow far more; this keeps a
# shared key polite. The free plan is 5 requests per minute (`--rate-limit 0.0833`).
DEFAULT_RATE_LIMIT = 20.0
# HTTP behaviour.
TIMEOUT_SECONDS = 30.0
MAX_ATTEMPTS = 6  # per request, for 5xx, timeouts, resets and truncated bodies
MAX_RATE_LIMITED_WAITS = 20  # 429 answers honoured per request before giving up
MAX_RETRY_AFTER_SECONDS = 120.0
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 20.0


# The `-t` datasets loaded from one Polygon listing each (loaders/datasets.py holds their entries: endpoint,
# bronze tables, cursor).
DATASETS: dict[str, Dataset] = registry.of_kind("rest")


def endpoint(name: str) -> Endpoint:
    """The listing a REST dataset pages through."""
    found = DATASETS[name].endpoint
    assert found is not None  # every REST entry has one (loaders/datasets.py checks)
    return found


# `options_contracts` also asks for single contracts no listing names any more (renamed by an adjustment).
OPTIONS_CONTRACT = Endpoint("/v3/reference/options/contracts/{ticker}", limit=0, per_ticker_param=None)

# `--include-short-data` with `-t fundamentals` also runs these.
SHORT_DATA = ("short_interest", "short_volume")


def default_start(end: dt.date) -> dt.date:
    """First date of a load that names no start: DEFAULT_LOOKBACK_YEARS before `end`."""
    return years_before(end, DEFAULT_LOOKBACK_YEARS)


def years_before(day: dt.date, years: int) -> dt.date:
    """`day` moved back `years` calendar years (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


#: overrides the registry's `refresh_window_days` of every windowed dataset (0: the daily refresh lists
#: them whole, as the weekly one does)
REFRESH_WINDOW_SETTING = "QM_REFRESH_WINDOW_DAYS"


def refresh_window_days(name: str) -> int | None:
    """Days of look-back of the daily refresh's listing of `name` (None: it lists the whole history).

    The registry's `refresh_window_days`, or `QM_REFRESH_WINDOW_DAYS` for every dataset that has one.
    """
    days = DATASETS[name].refresh_window_days
    if days is None:
        return None
    raw = os.environ.get(REFRESH_WINDOW_SETTING, "").strip()
    if raw:
        if not raw.isdigit():
            raise ValueError(
                f"{REFRESH_WINDOW_SETTING}={raw!r}: expected a whole number of days (0 lists the whole history)"
            )
        days = int(raw)
    return days or None
