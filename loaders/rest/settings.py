"""Endpoints, page sizes, keys and defaults of the REST datasets (one place to change them)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class Endpoint:
    """One Polygon listing: where it is, how to page it, which query parameters bound it by date."""

    path: str
    limit: int
    date_param: str | None = None  # filter field the -s/-e range applies to (`<param>.gte`/`.lte`)
    params: dict[str, str] = field(default_factory=dict)
    per_ticker_param: str | None = "ticker"  # query parameter a --tickers-file restricts on


@dataclass(frozen=True)
class Table:
    """A bronze table: `bronze/<dataset>/<name>/<partition>=YYYY-MM-DD/*.parquet`, merged on `primary_key`."""

    name: str
    partition: str
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    """A `-t` name: its endpoint, the dlt pipeline loading it and its bronze tables."""

    name: str
    endpoint: Endpoint
    pipeline: str
    tables: tuple[Table, ...]
    cursor: str | None = None  # bronze column of the incremental cursor (forward loads)
    dated: bool = True  # whether -s/-e restrict what is requested


NEWS = Endpoint(
    "/v2/reference/news",
    limit=1000,
    date_param="published_utc",
    params={"order": "asc", "sort": "published_utc"},
)
FINANCIALS = Endpoint(
    "/vX/reference/financials",
    limit=100,
    date_param="filing_date",
    params={"order": "asc", "sort": "filing_date"},
)
SHORT_INTEREST = Endpoint("/stocks/v1/short-interest", limit=1000, date_param="settlement_date")
SHORT_VOLUME = Endpoint("/stocks/v1/short-volume", limit=1000, date_param="date")
SPLITS = Endpoint("/v3/reference/splits", limit=1000, date_param="execution_date")
DIVIDENDS = Endpoint("/v3/reference/dividends", limit=1000, date_param="ex_dividend_date")
TICKERS = Endpoint("/v3/reference/tickers", limit=1000, params={"market": "stocks"})
TICKER_EVENTS = Endpoint("/vX/reference/tickers/{ticker}/events", limit=0, per_ticker_param=None)
OPTIONS_CONTRACTS = Endpoint(
    "/v3/reference/options/contracts", limit=1000, per_ticker_param="underlying_ticker"
)
OPTIONS_CONTRACT = Endpoint("/v3/reference/options/contracts/{ticker}", limit=0, per_ticker_param=None)
MARKET_HOLIDAYS = Endpoint("/v1/marketstatus/upcoming", limit=0, per_ticker_param=None)

DATASETS: dict[str, Dataset] = {
    "news": Dataset(
        "news",
        NEWS,
        "quantmini_news",
        (Table("news", "published_date", ("id",)),),
        cursor="published_utc",
    ),
    "fundamentals": Dataset(
        "fundamentals",
        FINANCIALS,
        "quantmini_fundamentals",
        (
            Table("financials", "filing_date", ("filing_id", "ticker", "statement", "line_item")),
            Table("financial_filings", "filing_date", ("filing_id", "ticker")),
        ),
        cursor="filing_date",
    ),
    "short_interest": Dataset(
        "short_interest",
        SHORT_INTEREST,
        "quantmini_short_interest",
        (Table("short_interest", "settlement_date", ("ticker", "settlement_date")),),
        cursor="settlement_date",
    ),
    "short_volume": Dataset(
        "short_volume",
        SHORT_VOLUME,
        "quantmini_short_volume",
        (Table("short_volume", "date", ("ticker", "date")),),
        cursor="date",
    ),
    "splits": Dataset("splits", SPLITS, "quantmini_splits", (Table("splits", "execution_date", ("id",)),)),
    "dividends": Dataset(
        "dividends", DIVIDENDS, "quantmini_dividends", (Table("dividends", "ex_dividend_date", ("id",)),)
    ),
    "ticker_events": Dataset(
        "ticker_events",
        TICKER_EVENTS,
        "quantmini_ticker_events",
        (Table("ticker_events", "event_date", ("id",)),),
        dated=False,
    ),
    "tickers": Dataset(
        "tickers",
        TICKERS,
        "quantmini_tickers",
        (Table("tickers", "snapshot_date", ("ticker",)),),
        dated=False,
    ),
    "options_contracts": Dataset(
        "options_contracts",
        OPTIONS_CONTRACTS,
        "quantmini_options_contracts",
        (Table("options_contracts", "expiration_date", ("ticker",)),),
    ),
    "market_holidays": Dataset(
        "market_holidays",
        MARKET_HOLIDAYS,
        "quantmini_market_holidays",
        (Table("market_holidays", "date", ("exchange", "date")),),
        dated=False,
    ),
}

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
