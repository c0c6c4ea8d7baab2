"""What operations need to know about each dataset: where it lives, how far back it goes, how often it moves.

One table here keeps gaps, bulk, status, report and refresh in agreement; the ingestion code owns how
a dataset is loaded, this module only says which ones exist and their operating defaults.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Literal

Kind = Literal["flatfile", "rest"]
Cadence = Literal["daily", "weekly"]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: Kind
    #: default history of a bulk load back from the latest available day: "5y", "6m", "30d" (None: no range)
    history: str | None
    #: `daily` datasets are refreshed by `refresh daily`; `weekly` ones only by `refresh weekly`
    cadence: Cadence
    #: flat-file key prefix on the S3 bucket (and under landing/flatfiles/)
    s3_prefix: str | None = None
    #: silver relations holding the dataset's sessions, most downstream first (looked up by name)
    silver_relations: tuple[str, ...] = ()
    #: gold Qlib frequency the dataset feeds (None: not exported to gold)
    gold_freq: str | None = None


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "stocks_daily",
            "flatfile",
            "5y",
            "daily",
            "us_stocks_sip/day_aggs_v1",
            ("fct_stock_features_daily", "stg_polygon__stocks_daily"),
            "day",
        ),
        DatasetSpec(
            "stocks_minute",
            "flatfile",
            "1y",
            "daily",
            "us_stocks_sip/minute_aggs_v1",
            ("fct_stock_minute_features_daily", "stg_polygon__stocks_minute"),
            "1min",
        ),
        DatasetSpec(
            "options_daily",
            "flatfile",
            "2y",
            "daily",
            "us_options_opra/day_aggs_v1",
            ("fct_option_contracts_daily", "stg_polygon__options_daily"),
        ),
        DatasetSpec(
            "options_minute",
            "flatfile",
            "1m",
            "daily",
            "us_options_opra/minute_aggs_v1",
            ("stg_polygon__options_minute",),
        ),
        DatasetSpec("news", "rest", "2y", "daily"),
        DatasetSpec("splits", "rest", None, "daily"),
        DatasetSpec("dividends", "rest", None, "daily"),
        DatasetSpec("tickers", "rest", None, "daily"),
        DatasetSpec("market_holidays", "rest", None, "daily"),
        DatasetSpec("short_volume", "rest", "1y", "daily"),
        DatasetSpec("short_interest", "rest", "2y", "weekly"),
        DatasetSpec("fundamentals", "rest", "5y", "weekly"),
        DatasetSpec("ticker_events", "rest", None, "weekly"),
        DatasetSpec("options_contracts", "rest", None, "weekly"),
    )
}

FLATFILE_DATASETS: tuple[str, ...] = tuple(n for n, s in DATASETS.items() if s.kind == "flatfile")
REST_DATASETS: tuple[str, ...] = tuple(n for n, s in DATASETS.items() if s.kind == "rest")


def spec(name: str) -> DatasetSpec:
    """The spec of `name`, or a ValueError listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}") from None


def history_start(history: str, end: dt.date) -> dt.date:
    """First day of a history window like "5y", "6m" or "30d" ending on `end` (inclusive)."""
    value = history.strip().lower()
    if len(value) < 2 or value[-1] not in "ymd" or not value[:-1].isdigit() or int(value[:-1]) <= 0:
        raise ValueError(
            f"history {history!r}: expected a positive N followed by y, m or d (e.g. 5y, 6m, 30d)"
        )
    n, unit = int(value[:-1]), value[-1]
    if unit == "d":
        return end - dt.timedelta(days=n - 1)
    months = n * 12 if unit == "y" else n
    year, month = divmod(end.year * 12 + end.month - 1 - months, 12)
    month += 1
    day = min(end.day, calendar.monthrange(year, month)[1])
    return dt.date(year, month, day) + dt.timedelta(days=1)
