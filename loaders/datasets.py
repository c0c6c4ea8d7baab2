"""The dataset registry: every `-t` dataset, once, with everything the rest of the code needs to know about it.

The CLI's `-t` choices, the flat-file and REST sources' settings, the sandbox's S3 listing and rendering,
the demo and the operations commands (gaps, bulk, status, validate, cleanup, refresh, retry-failed...) are
all built from `DATASETS`. Adding a dataset is one entry here plus its loading code (the parser of a
flat file, or the dlt resource in `loaders/rest/__init__.py`), its sandbox renderer and its dbt source and
models (docs/architecture.md, "Adding a dataset").

This module imports nothing heavy: `quantmini --help` reads it.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["flatfile", "rest"]
Cadence = Literal["daily", "weekly"]

#: bronze partition column of every flat-file dataset (the session the file is named after)
SESSION_PARTITION = "session_date"
#: one bar per ticker and bar start: the key of a flat-file row
BAR_KEY = ("ticker", "window_start")


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
    """A bronze table: `bronze/<dataset>/[<name>/]<partition>=YYYY-MM-DD/*.parquet`, keyed by `primary_key`."""

    name: str
    partition: str
    primary_key: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    """One `-t` dataset: how it is fetched, where bronze keeps it, which silver and gold it feeds."""

    name: str
    kind: Kind
    #: bronze tables (one folder `bronze/<name>/` when there is one, `bronze/<name>/<table>/` otherwise)
    tables: tuple[Table, ...]
    #: default history of a bulk load back from the latest available day: "5y", "6m", "30d" (None: no range)
    history: str | None
    #: `daily` datasets are refreshed by `refresh daily`; `weekly` ones only by `refresh weekly`
    cadence: Cadence
    #: silver relations holding the dataset's sessions, most downstream first (looked up by name)
    silver_relations: tuple[str, ...] = ()
    #: gold Qlib frequency the dataset feeds (None: not exported to gold)
    gold_freq: str | None = None
    #: datasets whose bronze this one reads while it loads (they come earlier in the registry)
    requires: tuple[str, ...] = ()
    #: a bulk load starts lower values first: 0 reference data other datasets are keyed by, 1 what the
    #: daily gold is built from, 2 the rest (in registry order within each value)
    load_priority: int = 2
    #: the demo loads only the last N sessions of its market (None: the demo's whole range)
    demo_sessions: int | None = None
    # --- flat files (one gzip CSV per NYSE session)
    #: key prefix on the S3 bucket, Polygon's layout (and the folder under landing/flatfiles/)
    s3_prefix: str | None = None
    #: minute bars: a sandbox market built with `minute=False` serves none
    minute: bool = False
    #: method of `loaders.sandbox.market.Market` returning the table behind one session's file
    market_table: str | None = None
    # --- REST (one Polygon listing)
    endpoint: Endpoint | None = None
    #: bronze column of the incremental cursor (forward loads)
    cursor: str | None = None
    #: whether -s/-e restrict what is requested
    dated: bool = True
    #: `refresh daily` lists only the actions dated (by `endpoint.date_param`) from this many days before
    #: the dataset's last complete listing on, with no upper bound (actions announced ahead are listed);
    #: `refresh weekly` and a plain `ingest` list the whole history. None: the daily refresh lists it whole
    #: too. `QM_REFRESH_WINDOW_DAYS` overrides the days for every such dataset (docs/rest.md).
    refresh_window_days: int | None = None

    def __post_init__(self) -> None:
        if self.kind == "flatfile" and not (self.s3_prefix and self.market_table):
            raise ValueError(f"flat-file dataset {self.name!r} needs s3_prefix and market_table")
        if self.kind == "rest" and self.endpoint is None:
            raise ValueError(f"REST dataset {self.name!r} needs an endpoint")
        if self.refresh_window_days is not None and (
            self.cursor is not None or self.endpoint is None or self.endpoint.date_param is None
        ):
            raise ValueError(
                f"dataset {self.name!r}: a refresh window needs a dated listing without a forward cursor"
            )
        if not self.tables:
            raise ValueError(f"dataset {self.name!r} has no bronze table")

    @property
    def pipeline_name(self) -> str:
        """The dlt pipeline loading the dataset."""
        return f"quantmini_{self.name}"

    @property
    def manifest_table(self) -> str:
        """Flat files: dlt table holding one row per fully parsed file; a session is committed only if listed."""
        return f"{self.name}_files"

    def key(self, day: dt.date) -> str:
        """Flat files: the S3 key of one session, `us_stocks_sip/day_aggs_v1/2025/10/2025-10-17.csv.gz`."""
        if self.s3_prefix is None:
            raise ValueError(f"{self.name} is not a flat-file dataset")
        return f"{self.s3_prefix}/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"

    def table_dir(self, table: Table) -> str:
        """Folder of a bronze table relative to the bronze root: the dataset, or dataset/table when it has several."""
        return self.name if len(self.tables) == 1 else f"{self.name}/{table.name}"


def _flatfile(name: str, s3_prefix: str, market_table: str, **kw: object) -> Dataset:
    return Dataset(
        name,
        "flatfile",
        (Table(name, SESSION_PARTITION, BAR_KEY),),
        s3_prefix=s3_prefix,
        market_table=market_table,
        **kw,
    )


def _rest(name: str, endpoint: Endpoint, *tables: Table, **kw: object) -> Dataset:
    return Dataset(name, "rest", tables, endpoint=endpoint, **kw)


_ENTRIES = (
    _flatfile(
        "stocks_daily",
        "us_stocks_sip/day_aggs_v1",
        "stock_day_aggs",
        history="5y",
        cadence="daily",
        silver_relations=("fct_stock_features_daily", "stg_polygon__stocks_daily"),
        gold_freq="day",
        load_priority=1,
    ),
    _flatfile(
        "stocks_minute",
        "us_stocks_sip/minute_aggs_v1",
        "stock_minute_aggs",
        minute=True,
        history="1y",
        cadence="daily",
        silver_relations=("fct_stock_minute_features_daily", "stg_polygon__stocks_minute"),
        gold_freq="1min",
        demo_sessions=15,
    ),
    _flatfile(
        "options_daily",
        "us_options_opra/day_aggs_v1",
        "option_day_aggs",
        history="2y",
        cadence="daily",
        silver_relations=("fct_option_contracts_daily", "stg_polygon__options_daily"),
    ),
    _flatfile(
        "options_minute",
        "us_options_opra/minute_aggs_v1",
        "option_minute_aggs",
        minute=True,
        history="1m",
        cadence="daily",
        silver_relations=("stg_polygon__options_minute",),
        demo_sessions=5,
    ),
    _rest(
        "news",
        Endpoint(
            "/v2/reference/news",
            limit=1000,
            date_param="published_utc",
            params={"order": "asc", "sort": "published_utc"},
        ),
        Table("news", "published_date", ("id",)),
        cursor="published_utc",
        history="2y",
        cadence="daily",
    ),
    _rest(
        "splits",
        Endpoint("/v3/reference/splits", limit=1000, date_param="execution_date"),
        Table("splits", "execution_date", ("id",)),
        refresh_window_days=30,
        load_priority=1,
        history=None,
        cadence="daily",
    ),
    _rest(
        "dividends",
        Endpoint("/v3/reference/dividends", limit=1000, date_param="ex_dividend_date"),
        Table("dividends", "ex_dividend_date", ("id",)),
        refresh_window_days=30,
        load_priority=1,
        history=None,
        cadence="daily",
    ),
    _rest(
        "tickers",
        Endpoint("/v3/reference/tickers", limit=1000, params={"market": "stocks"}),
        Table("tickers", "snapshot_date", ("ticker",)),
        load_priority=0,
        dated=False,
        history=None,
        cadence="daily",
    ),
    _rest(
        "market_holidays",
        Endpoint("/v1/marketstatus/upcoming", limit=0, per_ticker_param=None),
        Table("market_holidays", "date", ("exchange", "date")),
        load_priority=0,
        dated=False,
        history=None,
        cadence="daily",
    ),
    _rest(
        "short_volume",
        Endpoint("/stocks/v1/short-volume", limit=1000, date_param="date"),
        Table("short_volume", "date", ("ticker", "date")),
        cursor="date",
        history="1y",
        cadence="daily",
    ),
    _rest(
        "short_interest",
        Endpoint("/stocks/v1/short-interest", limit=1000, date_param="settlement_date"),
        Table("short_interest", "settlement_date", ("ticker", "settlement_date")),
        cursor="settlement_date",
        history="2y",
        cadence="weekly",
    ),
    _rest(
        "fundamentals",
        Endpoint(
            "/vX/reference/financials",
            limit=100,
            date_param="filing_date",
            params={"order": "asc", "sort": "filing_date"},
        ),
        Table("financials", "filing_date", ("filing_id", "ticker", "statement", "line_item")),
        Table("financial_filings", "filing_date", ("filing_id", "ticker")),
        cursor="filing_date",
        history="5y",
        cadence="weekly",
    ),
    _rest(
        "ticker_events",
        Endpoint("/vX/reference/tickers/{ticker}/events", limit=0, per_ticker_param=None),
        Table("ticker_events", "event_date", ("id",)),
        dated=False,
        # one request per ticker of the loaded universe
        requires=("tickers",),
        history=None,
        cadence="weekly",
    ),
    _rest(
        "options_contracts",
        Endpoint("/v3/reference/options/contracts", limit=1000, per_ticker_param="underlying_ticker"),
        Table("options_contracts", "expiration_date", ("ticker",)),
        # the contracts of the loaded option bars, including expired and renamed ones
        requires=("options_daily", "options_minute"),
        history=None,
        cadence="weekly",
    ),
)

DATASETS: dict[str, Dataset] = {d.name: d for d in _ENTRIES}
NAMES: tuple[str, ...] = tuple(DATASETS)
FLATFILE_DATASETS: tuple[str, ...] = tuple(n for n, d in DATASETS.items() if d.kind == "flatfile")
REST_DATASETS: tuple[str, ...] = tuple(n for n, d in DATASETS.items() if d.kind == "rest")


def _check_registry() -> None:
    """Names are unique, requirements name earlier entries (so registry order is a load order)."""
    if len(DATASETS) != len(_ENTRIES):
        raise ValueError("dataset registry: a name is registered twice")
    for position, entry in enumerate(_ENTRIES):
        for required in entry.requires:
            if required not in NAMES[:position]:
                raise ValueError(
                    f"dataset registry: {entry.name} requires {required!r}, which must be an earlier entry"
                )


_check_registry()


def spec(name: str) -> Dataset:
    """The dataset `name`, or a ValueError listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS)}") from None


def of_kind(kind: Kind) -> dict[str, Dataset]:
    """The datasets of one source, in registry order."""
    return {n: d for n, d in DATASETS.items() if d.kind == kind}


def start_order(names: list[str] | tuple[str, ...]) -> list[str]:
    """`names` in the order a parallel load starts them: by `load_priority`, then registry order.

    Registry order already puts every requirement before its dependents, so a sequential run takes the
    registry order as it is.
    """
    index = {n: i for i, n in enumerate(NAMES)}
    return sorted(names, key=lambda n: (spec(n).load_priority, index[n]))


def feeding_gold(freq: str) -> str:
    """The dataset whose bars make the gold provider of frequency `freq` ("day", "1min")."""
    for d in DATASETS.values():
        if d.gold_freq == freq:
            return d.name
    raise ValueError(f"no dataset feeds gold frequency {freq!r}")


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
