"""dlt source for Polygon's REST datasets: news, fundamentals, short data, corporate actions, reference.

One resource per dataset. Each walks Polygon's `next_url` pages through `loaders.landing.PageStore` (raw
pages to landing first, resumable) and yields typed Arrow tables (`parsing`), so dlt skips row-by-row
normalisation and bronze keeps list columns such as news `tickers` and `insights`. Dated datasets with a
forward cursor (news, fundamentals, short data) declare it with `dlt.sources.incremental`; a backfill
passes `end_value`, which dlt keeps out of state, so it never moves the forward cursor.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.extract.resource import DltResource

from loaders.landing import PageStore
from loaders.rest import parsing, settings
from loaders.rest.client import PolygonClient, RestError

#: the dlt source name, which is also the key of its state in the pipeline state
SOURCE_NAME = "polygon_rest"

Parsed = dict[str, pa.Table]


@dataclass
class RunContext:
    """What every resource of one run shares: the client, where to land pages, the request scope."""

    client: PolygonClient
    landing_root: Path
    secret: str
    start: dt.date | None = None
    end: dt.date | None = None
    tickers: Sequence[str] | None = None
    max_concurrent: int = 4
    #: the UTC day of the run: the tickers snapshot, and where an open-ended range stops being cut into months
    snapshot_date: dt.date = field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    # options_contracts without -s/-e: expired contracts are listed from this expiration date on, and
    # contracts of the option bars in this bronze dir (since that date) still without a reference row
    # are looked up one by one
    expired_since: dt.date | None = None
    bronze_dir: Path | None = None
    rows: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    resumed_pages: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, table: str, rows: int) -> None:
        with self._lock:
            self.rows[table] = self.rows.get(table, 0) + rows

    def page(self, resumed: bool) -> None:
        with self._lock:
            self.pages += 1
            self.resumed_pages += int(resumed)


def _results(data: Any) -> Any:
    """`results` of a page; market status answers with a bare list."""
    if isinstance(data, list):
        return data
    if not isinstance(data, Mapping):
        raise RestError(f"unexpected response of type {type(data).__name__}")
    return data.get("results") or []


def _walk(
    ctx: RunContext, dataset: str, path: str, params: Mapping[str, Any], parse: Callable[[Any], Parsed]
) -> Iterator[Parsed]:
    """Parsed pages of one listing, landed (and resumed) under landing/rest/<dataset>/."""
    query = dict(params)
    landing = PageStore(ctx.landing_root, dataset, path, query, ctx.secret)
    for page in landing.pages(ctx.client, path, query):
        ctx.page(page.resumed)
        yield parse(_results(page.data))


def _fan_out(
    ctx: RunContext,
    dataset: str,
    jobs: Sequence[tuple[str, Mapping[str, Any], Callable[[Any], Parsed]]],
    *,
    missing_ok: bool = False,
) -> Iterator[Parsed]:
    """Run several listings, up to `max_concurrent` at once, yielding their pages in job order.

    `missing_ok` turns a 404 into an empty listing (a ticker with no event history).
    """

    def run(job: tuple[str, Mapping[str, Any], Callable[[Any], Parsed]]) -> list[Parsed]:
        try:
            return list(_walk(ctx, dataset, *job))
        except RestError as exc:
            if missing_ok and exc.status == 404:
                return []
            raise

    if len(jobs) == 1 and not missing_ok:
        yield from _walk(ctx, dataset, *jobs[0])  # stream a single listing page by page
        return
    # At most `max_concurrent` listings in flight (and in memory); pages come out in job order.
    with ThreadPoolExecutor(max_workers=ctx.max_concurrent, thread_name_prefix=f"rest-{dataset}") as pool:
        pending: deque[Future[list[Parsed]]] = deque()
        queue = iter(jobs)
        for job in itertools.islice(queue, ctx.max_concurrent):
            pending.append(pool.submit(run, job))
        while pending:
            parsed_pages = pending.popleft().result()
            for job in itertools.islice(queue, 1):
                pending.append(pool.submit(run, job))
            yield from parsed_pages


def _emit(ctx: RunContext, dataset: str, parsed: Iterable[Parsed]) -> Iterator[Any]:
    """Arrow tables with their bronze table name and merge hints attached."""
    spec = settings.DATASETS[dataset]
    tables = {t.name: t for t in spec.tables}
    for page in parsed:
        for name, table in page.items():
            if table.num_rows == 0:
                continue
            ctx.count(name, table.num_rows)
            table = _key_not_null(table, tables[name].primary_key)
            hints = dlt.mark.make_hints(
                table_name=name,
                write_disposition="merge",
                primary_key=list(tables[name].primary_key),
            )
            yield dlt.mark.with_hints(table, hints)


def _key_not_null(table: pa.Table, key: Sequence[str]) -> pa.Table:
    """Declare key columns non-nullable, as dlt's primary-key hint does (a null key fails loudly later)."""
    if any(table.column(c).null_count for c in key if c in table.column_names):
        return table
    fields = [f.with_nullable(False) if f.name in key else f for f in table.schema]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def _ticker_jobs(
    ctx: RunContext, endpoint: settings.Endpoint, params: dict[str, Any], parse: Callable[..., Parsed]
) -> list[tuple[str, Mapping[str, Any], Callable[[Any], Parsed]]]:
    """One listing for the whole market, or one per ticker of --tickers-file."""
    if not ctx.tickers or endpoint.per_ticker_param is None:
        return [(endpoint.path, params, parse)]
    return [
        (endpoint.path, {**params, endpoint.per_ticker_param: ticker}, _bind_ticker(parse, ticker))
        for ticker in ctx.tickers
    ]


def _dated_jobs(
    ctx: RunContext,
    endpoint: settings.Endpoint,
    cursor: dlt.sources.incremental[Any] | None,
    parse: Callable[..., Parsed],
) -> list[tuple[str, Mapping[str, Any], Callable[[Any], Parsed]]]:
    """Listings of a dated endpoint: per month window (market-wide) or per ticker (--tickers-file)."""
    base = _base_params(endpoint)
    return [
        job
        for bounds in _windows(endpoint, cursor, ctx)
        for job in _ticker_jobs(ctx, endpoint, {**base, **bounds}, parse)
    ]


def _bind_ticker(parse: Callable[..., Parsed], ticker: str) -> Callable[[Any], Parsed]:
    """Tell parsers that want it which ticker was asked for (financials without `tickers`)."""
    if "requested_ticker" not in inspect.signature(parse).parameters:
        return parse
    return functools.partial(parse, requested_ticker=ticker)


def _windows(
    endpoint: settings.Endpoint, cursor: dlt.sources.incremental[Any] | None, ctx: RunContext
) -> list[dict[str, str]]:
    """`<field>.gte/.lt(e)` query bounds from the cursor (forward) or from -s/-e (reference data).

    A range longer than a month, requested market-wide with `--max-concurrent` above 1, is cut into
    calendar months so several listings can page at once (each is landed and resumed on its own).
    """
    field_name = endpoint.date_param
    if field_name is None:
        return [{}]
    start: Any = cursor.start_value if cursor is not None else ctx.start
    end: Any = cursor.end_value if cursor is not None and cursor.end_value is not None else ctx.end
    if isinstance(start, dt.datetime) and type(end) is dt.date:
        # a timestamp cursor bounded by a day: include that whole UTC day (`.lt` the next midnight)
        end = _next_midnight(end)
    spans: list[tuple[Any, Any]] = [(start, end)]
    if ctx.max_concurrent > 1 and not ctx.tickers and start is not None:
        if isinstance(start, dt.datetime):
            stop = end if end is not None else _next_midnight(ctx.snapshot_date)
        else:
            stop = end if end is not None else ctx.snapshot_date + dt.timedelta(days=1)
        months = _months(start, stop)
        if len(months) > 1:
            spans = months
    if cursor is None and end is None:
        # reference data is dated ahead (dividends declared with a future ex-date, splits announced
        # before they execute): a range without -e has no upper bound, whatever the month cuts
        spans[-1] = (spans[-1][0], None)
    return [_bounds(field_name, a, b) for a, b in spans]


def _next_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)


def _months(start: Any, stop: Any) -> list[tuple[Any, Any]]:
    """Calendar-month spans covering [start, stop]: datetimes end exclusive, dates end inclusive."""
    spans: list[tuple[Any, Any]] = []
    lo = start
    while lo is not None and (lo < stop if isinstance(lo, dt.datetime) else lo <= stop):
        first = lo.date() if isinstance(lo, dt.datetime) else lo
        following = (first.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        if isinstance(lo, dt.datetime):
            hi = min(dt.datetime(following.year, following.month, 1, tzinfo=dt.UTC), stop)
            spans.append((lo, hi))
            lo = hi
        else:
            hi = min(following - dt.timedelta(days=1), stop)
            spans.append((lo, hi))
            lo = hi + dt.timedelta(days=1)
    return spans


def _bounds(field_name: str, start: Any, end: Any) -> dict[str, str]:
    bounds: dict[str, str] = {}
    if start is not None:
        bounds[f"{field_name}.gte"] = _iso(start)
    if end is not None:
        if isinstance(end, dt.datetime):
            bounds[f"{field_name}.lt"] = _iso(end)
        else:
            bounds[f"{field_name}.lte"] = _iso(end)
    return bounds


def _iso(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _base_params(endpoint: settings.Endpoint) -> dict[str, Any]:
    params: dict[str, Any] = dict(endpoint.params)
    if endpoint.limit:
        params["limit"] = endpoint.limit
    return params


# -- resources ------------------------------------------------------------------------------------------


@dlt.resource(name="news", write_disposition="merge", primary_key="id")
def news(
    ctx: RunContext,
    published_utc: dlt.sources.incremental[dt.datetime] = dlt.sources.incremental(
        "published_utc", primary_key=(), range_end="open"
    ),
) -> Iterator[Any]:
    """Articles by `published_utc`; a re-published article (same id) replaces the old row on merge."""
    endpoint = settings.endpoint("news")
    jobs = _dated_jobs(ctx, endpoint, published_utc, parsing.news)
    yield from _emit(ctx, "news", _fan_out(ctx, "news", jobs))


@dlt.resource(name="financials", write_disposition="merge")
def fundamentals(
    ctx: RunContext,
    filing_date: dlt.sources.incremental[dt.date] = dlt.sources.incremental(
        "filing_date", primary_key=(), range_end="closed"
    ),
) -> Iterator[Any]:
    """Financial statements by filing date: line items in long form plus one header row per filing."""
    endpoint = settings.endpoint("fundamentals")
    jobs = _dated_jobs(ctx, endpoint, filing_date, parsing.financials)
    yield from _emit(ctx, "fundamentals", _fan_out(ctx, "fundamentals", jobs))


@dlt.resource(name="short_interest", write_disposition="merge", primary_key=("ticker", "settlement_date"))
def short_interest(
    ctx: RunContext,
    settlement_date: dlt.sources.incremental[dt.date] = dlt.sources.incremental(
        "settlement_date", primary_key=(), range_end="closed"
    ),
) -> Iterator[Any]:
    """Bi-monthly short interest by settlement date."""
    endpoint = settings.endpoint("short_interest")
    jobs = _dated_jobs(ctx, endpoint, settlement_date, parsing.short_interest)
    yield from _emit(ctx, "short_interest", _fan_out(ctx, "short_interest", jobs))


@dlt.resource(name="short_volume", write_disposition="merge", primary_key=("ticker", "date"))
def short_volume(
    ctx: RunContext,
    date: dlt.sources.incremental[dt.date] = dlt.sources.incremental(
        "date", primary_key=(), range_end="closed"
    ),
) -> Iterator[Any]:
    """Daily short volume by trade date."""
    endpoint = settings.endpoint("short_volume")
    jobs = _dated_jobs(ctx, endpoint, date, parsing.short_volume)
    yield from _emit(ctx, "short_volume", _fan_out(ctx, "short_volume", jobs))


@dlt.resource(name="splits", write_disposition="merge", primary_key="id")
def splits(ctx: RunContext) -> Iterator[Any]:
    """Splits by execution date within -s/-e (all of them when no range is given)."""
    endpoint = settings.endpoint("splits")
    jobs = _dated_jobs(ctx, endpoint, None, parsing.splits)
    yield from _emit(ctx, "splits", _fan_out(ctx, "splits", jobs))


@dlt.resource(name="dividends", write_disposition="merge", primary_key="id")
def dividends(ctx: RunContext) -> Iterator[Any]:
    """Cash dividends by ex-dividend date within -s/-e."""
    endpoint = settings.endpoint("dividends")
    jobs = _dated_jobs(ctx, endpoint, None, parsing.dividends)
    yield from _emit(ctx, "dividends", _fan_out(ctx, "dividends", jobs))


@dlt.resource(name="tickers", write_disposition="merge", primary_key="ticker")
def tickers(ctx: RunContext) -> Iterator[Any]:
    """The stock universe, active and delisted, as of the run (one listing each)."""
    endpoint = settings.endpoint("tickers")

    def parse(results: Any) -> Parsed:
        return parsing.tickers(results, ctx.snapshot_date)

    base = _base_params(endpoint)
    if ctx.tickers:
        jobs = [
            (endpoint.path, {**base, "ticker": t, "active": active}, parse)
            for t in ctx.tickers
            for active in ("true", "false")
        ]
    else:
        jobs = [(endpoint.path, {**base, "active": active}, parse) for active in ("true", "false")]
    pages = [page["tickers"] for page in _fan_out(ctx, "tickers", jobs)]
    if pages:
        yield from _emit(ctx, "tickers", [{"tickers": one_row_per_ticker(pa.concat_tables(pages))}])


def one_row_per_ticker(table: pa.Table) -> pa.Table:
    """A symbol can be both delisted (an old company) and active (a new one): keep the active listing,
    else the most recently delisted one, so the merge by ticker never depends on page order."""
    rows = table.to_pylist()
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)

    def rank(row: dict[str, Any]) -> tuple[bool, dt.datetime, dt.datetime]:
        return (bool(row["active"]), row["delisted_utc"] or epoch, row["last_updated_utc"] or epoch)

    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        current = best.get(row["ticker"])
        if current is None or rank(row) > rank(current):
            best[row["ticker"]] = row
    return pa.Table.from_pylist(list(best.values()), schema=table.schema)


@dlt.resource(name="ticker_events", write_disposition="merge", primary_key="id")
def ticker_events(ctx: RunContext, universe: Sequence[str]) -> Iterator[Any]:
    """Ticker-change history, one request per ticker of the universe (404: no history)."""
    endpoint = settings.endpoint("ticker_events")
    jobs = [
        (
            endpoint.path.format(ticker=ticker),
            {"types": "ticker_change"},
            lambda results, t=ticker: parsing.ticker_events(results, t),
        )
        for ticker in universe
    ]
    if not jobs:
        return
    yield from _emit(ctx, "ticker_events", _fan_out(ctx, "ticker_events", jobs, missing_ok=True))


@dlt.resource(name="options_contracts", write_disposition="merge", primary_key="ticker")
def options_contracts(ctx: RunContext) -> Iterator[Any]:
    """Contracts listed now plus expired ones: those that expired within -s/-e, or without dates those
    that expired on or after `ctx.expired_since` (the option bars' first session; see run_dataset)."""
    endpoint = settings.endpoint("options_contracts")
    base = _base_params(endpoint)
    listings: list[dict[str, Any]] = [{**base, "expired": "false"}]
    if ctx.start is None and ctx.end is None and ctx.expired_since is not None:
        listings.append({**base, "expired": "true", "expiration_date.gte": ctx.expired_since.isoformat()})
    elif ctx.start is not None or ctx.end is not None:
        expired: dict[str, Any] = {**base, "expired": "true"}
        if ctx.start is not None:
            expired["expiration_date.gte"] = ctx.start.isoformat()
        if ctx.end is not None:
            expired["expiration_date.lte"] = ctx.end.isoformat()
        listings.append(expired)
    jobs = [
        job for params in listings for job in _ticker_jobs(ctx, endpoint, params, parsing.options_contracts)
    ]
    seen: set[str] = set()

    def tracked(pages: Iterable[Parsed]) -> Iterator[Parsed]:
        for page in pages:
            for table in page.values():
                seen.update(table.column("ticker").to_pylist())
            yield page

    yield from _emit(ctx, "options_contracts", tracked(_fan_out(ctx, "options_contracts", jobs)))
    if ctx.bronze_dir is None or ctx.tickers:
        return
    # a contract renamed by an adjustment (XYZ -> XYZ1 after a split) is in no listing under its old
    # ticker: ask for each such contract as of its last bar
    missing = unreferenced_contracts(ctx.bronze_dir, seen, ctx.expired_since or ctx.start)
    single = settings.OPTIONS_CONTRACT
    lookups = [
        (
            single.path.format(ticker=ticker),
            {"as_of": last.isoformat()},
            lambda r: parsing.options_contracts(r if isinstance(r, list) else [r] if r else []),
        )
        for ticker, last in sorted(missing.items())
    ]
    if lookups:
        yield from _emit(
            ctx, "options_contracts", _fan_out(ctx, "options_contracts", lookups, missing_ok=True)
        )


def unreferenced_contracts(bronze_dir: Path, known: set[str], since: dt.date | None) -> dict[str, dt.date]:
    """Contract tickers of the bronze option bars (sessions from `since` on) with no reference row in
    bronze or in `known`, each with the last session it traded."""
    import duckdb

    bars = [
        (bronze_dir / name).as_posix() + "/*/*.parquet"
        for name in settings.DATASETS["options_contracts"].requires
        if any((bronze_dir / name).glob("*/*.parquet"))
    ]
    if not bars:
        return {}
    where = f"where session_date >= date '{since.isoformat()}'" if since else ""
    con = duckdb.connect()
    try:
        sources = " union all ".join(
            f"select ticker, session_date from read_parquet('{glob}', hive_partitioning = true)"
            for glob in bars
        )
        last = dict(
            con.execute(
                f"select ticker, max(session_date) from ({sources}) {where} group by ticker"
            ).fetchall()
        )
        contracts = bronze_dir / "options_contracts"
        if last and any(contracts.glob("**/*.parquet")):
            glob = (contracts.as_posix()) + "/**/*.parquet"
            known = known | {
                r[0] for r in con.execute(f"select distinct ticker from read_parquet('{glob}')").fetchall()
            }
    finally:
        con.close()
    return {ticker: day for ticker, day in last.items() if ticker not in known}


@dlt.resource(name="market_holidays", write_disposition="merge", primary_key=("exchange", "date"))
def market_holidays(ctx: RunContext) -> Iterator[Any]:
    """Upcoming market holidays and early closes (Polygon serves only the upcoming ones: keep loading)."""
    endpoint = settings.endpoint("market_holidays")
    jobs = [(endpoint.path, {}, parsing.market_holidays)]
    yield from _emit(ctx, "market_holidays", _fan_out(ctx, "market_holidays", jobs))


RESOURCES: dict[str, Callable[..., DltResource]] = {
    "news": news,
    "fundamentals": fundamentals,
    "short_interest": short_interest,
    "short_volume": short_volume,
    "splits": splits,
    "dividends": dividends,
    "tickers": tickers,
    "ticker_events": ticker_events,
    "options_contracts": options_contracts,
    "market_holidays": market_holidays,
}


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def polygon_rest(
    dataset: str,
    ctx: RunContext,
    cursor: dlt.sources.incremental[Any] | None = None,
    universe: Sequence[str] | None = None,
) -> DltResource:
    """The resource of one `-t` dataset, bound to this run's context (and cursor, for dated ones)."""
    if dataset not in RESOURCES:
        raise ValueError(f"unknown REST dataset {dataset!r}; expected one of {', '.join(RESOURCES)}")
    make = RESOURCES[dataset]
    if dataset == "ticker_events":
        return make(ctx, list(universe or []))
    if cursor is not None:
        return make(ctx, cursor)
    return make(ctx)
