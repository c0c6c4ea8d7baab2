"""Aggregate bars for the sandbox REST server: `/v2/aggs/ticker/.../range/...` and grouped daily.

Bars come from the same per-session tables the flat files are rendered from, so REST and S3 always
agree. Like Polygon, REST bars are split-adjusted unless `adjusted=false` (flat files never are), carry a
`vw`, and a range response is capped at `limit` base bars with a `next_url` that resumes after them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from loaders import calendar
from loaders.sandbox.rest_query import QueryError, parse_value

NEW_YORK = ZoneInfo("America/New_York")
MS_PER_MINUTE = 60_000
AGGS_DEFAULT_LIMIT = 5000
AGGS_MAX_LIMIT = 50000
TIMESPANS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")


class MarketLike(Protocol):
    """The part of `loaders.sandbox.market.Market` the aggregates need."""

    sessions: list[dt.date]

    def stock_day_aggs(self, day: dt.date) -> pa.Table: ...
    def stock_minute_aggs(self, day: dt.date) -> pa.Table: ...
    def option_day_aggs(self, day: dt.date) -> pa.Table: ...
    def option_minute_aggs(self, day: dt.date) -> pa.Table: ...
    def splits(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Bar:
    t: int  # ms, bar start
    o: float
    h: float
    low: float
    c: float
    v: float
    n: int
    day: dt.date

    @property
    def vw(self) -> float:
        # the synthetic market has no trades to weight; the typical price stands in for the VWAP
        return (self.h + self.low + self.c) / 3.0


def _number(value: float) -> int | float:
    """Integral volumes print as JSON integers, fractional ones as decimals (Polygon does the same)."""
    return int(value) if float(value).is_integer() else value


def _price(value: float) -> float:
    return round(value, 4)


def midnight_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).timestamp() * 1000)


def ms_to_day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, tz=NEW_YORK).date()


def parse_bound(name: str, raw: str, *, end: bool) -> int:
    """`from`/`to` path values: YYYY-MM-DD (whole day, New York time) or a Unix millisecond timestamp."""
    if raw.isdigit():
        return int(raw)
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise QueryError(
            f"Could not parse the time parameter: '{name}'. Use YYYY-MM-DD or Unix MS Timestamps (got {raw!r})"
        ) from None
    return midnight_ms(day + dt.timedelta(days=1)) - 1 if end else midnight_ms(day)


def split_factors(market: MarketLike, ticker: str, today: dt.date) -> list[tuple[dt.date, float]]:
    """(execution date, price ratio) of the ticker's splits known by `today`, oldest first."""
    out = []
    for split in market.splits():
        if split.get("ticker") != ticker:
            continue
        executed = dt.date.fromisoformat(split["execution_date"])
        if executed <= today:
            out.append((executed, float(split["split_from"]) / float(split["split_to"])))
    return sorted(out)


def price_factor(factors: list[tuple[dt.date, float]], day: dt.date) -> float:
    """Multiplier that puts a raw price of `day` on today's share basis (volume divides by it)."""
    factor = 1.0
    for executed, ratio in factors:
        if day < executed:
            factor *= ratio
    return factor


def _table_for(market: MarketLike, ticker: str, day: dt.date, minute: bool) -> pa.Table:
    option = ticker.startswith("O:")
    if minute:
        return market.option_minute_aggs(day) if option else market.stock_minute_aggs(day)
    return market.option_day_aggs(day) if option else market.stock_day_aggs(day)


def _bars_of(table: pa.Table, ticker: str, day: dt.date, factor: float) -> list[Bar]:
    rows = table.filter(pc.equal(table["ticker"], ticker))
    if rows.num_rows == 0:
        return []
    cols = {
        name: rows[name].to_pylist()
        for name in ("open", "high", "low", "close", "volume", "window_start", "transactions")
    }
    bars = []
    for i in range(rows.num_rows):
        bars.append(
            Bar(
                t=int(cols["window_start"][i]) // 1_000_000,
                o=cols["open"][i] * factor,
                h=cols["high"][i] * factor,
                low=cols["low"][i] * factor,
                c=cols["close"][i] * factor,
                v=cols["volume"][i] / factor,
                n=int(cols["transactions"][i] or 0),
                day=day,
            )
        )
    bars.sort(key=lambda b: b.t)
    return bars


def _bucket_start(bar: Bar, multiplier: int, timespan: str, anchor: dt.date) -> int:
    """Start (ms) of the window of `multiplier` x `timespan` a bar falls in."""
    if timespan in ("minute", "hour"):
        width = multiplier * MS_PER_MINUTE * (60 if timespan == "hour" else 1)
        return bar.t - bar.t % width
    day = bar.day
    if timespan == "day":
        offset = (day - anchor).days // multiplier * multiplier
        return midnight_ms(anchor + dt.timedelta(days=offset))
    if timespan == "week":
        sunday = day - dt.timedelta(days=(day.weekday() + 1) % 7)
        anchor_sunday = anchor - dt.timedelta(days=(anchor.weekday() + 1) % 7)
        weeks = (sunday - anchor_sunday).days // 7 // multiplier * multiplier
        return midnight_ms(anchor_sunday + dt.timedelta(weeks=weeks))
    months = {"month": 1, "quarter": 3, "year": 12}[timespan] * multiplier
    index = day.year * 12 + day.month - 1
    if timespan != "month":
        index -= index % {"quarter": 3, "year": 12}[timespan]
    anchor_index = anchor.year * 12 + anchor.month - 1
    index = anchor_index + (index - anchor_index) // months * months
    return midnight_ms(dt.date(index // 12, index % 12 + 1, 1))


def _aggregate(t: int, bars: list[Bar]) -> dict[str, Any]:
    bars = sorted(bars, key=lambda b: b.t)
    volume = sum(b.v for b in bars)
    vw = sum(b.vw * b.v for b in bars) / volume if volume else bars[-1].vw
    return {
        "v": _number(round(volume, 4)),
        "vw": _price(vw),
        "o": _price(bars[0].o),
        "c": _price(bars[-1].c),
        "h": _price(max(b.h for b in bars)),
        "l": _price(min(b.low for b in bars)),
        "t": t,
        "n": sum(b.n for b in bars),
    }


@dataclass
class RangeRequest:
    ticker: str
    multiplier: int
    timespan: str
    from_ms: int
    to_ms: int
    adjusted: bool
    descending: bool
    limit: int
    anchor: dt.date


def parse_range(path: Mapping[str, str], params: Mapping[str, str]) -> RangeRequest:
    try:
        multiplier = int(path["multiplier"])
    except ValueError:
        raise QueryError(f"invalid multiplier {path['multiplier']!r}: expected a positive integer") from None
    if multiplier < 1:
        raise QueryError(f"invalid multiplier {path['multiplier']!r}: expected a positive integer")
    timespan = path["timespan"]
    if timespan not in TIMESPANS:
        raise QueryError(f"invalid timespan {timespan!r}: expected one of {', '.join(TIMESPANS)}")
    if timespan == "second":
        raise QueryError("timespan 'second' is not served by the sandbox: its smallest bar is the minute")
    from_ms = parse_bound("from", path["from"], end=False)
    to_ms = parse_bound("to", path["to"], end=True)
    adjusted = parse_value("adjusted", params["adjusted"], "bool") if "adjusted" in params else True
    sort = params.get("sort", "asc")
    if sort not in ("asc", "desc"):
        raise QueryError(f"invalid value {sort!r} for query parameter 'sort': expected asc or desc")
    limit = AGGS_DEFAULT_LIMIT
    if "limit" in params:
        limit = parse_value("limit", params["limit"], "int")
        if limit < 1:
            raise QueryError(
                f"invalid value {params['limit']!r} for query parameter 'limit': must be at least 1"
            )
        limit = min(limit, AGGS_MAX_LIMIT)
    anchor = dt.date.fromisoformat(params["anchor"]) if "anchor" in params else ms_to_day(from_ms)
    return RangeRequest(
        ticker=path["ticker"],
        multiplier=multiplier,
        timespan=timespan,
        from_ms=from_ms,
        to_ms=to_ms,
        adjusted=adjusted,
        descending=sort == "desc",
        limit=limit,
        anchor=anchor,
    )


def _base_bars(market: MarketLike, req: RangeRequest, today: dt.date) -> Iterator[Bar]:
    """Base bars in the requested order, one session at a time (so a capped page reads few sessions)."""
    first, last = ms_to_day(req.from_ms), min(ms_to_day(req.to_ms), today)
    days = [d for d in market.sessions if first <= d <= last]
    if req.descending:
        days.reverse()
    minute = req.timespan in ("minute", "hour")
    factors = (
        split_factors(market, req.ticker, today) if req.adjusted and not req.ticker.startswith("O:") else []
    )
    for day in days:
        bars = _bars_of(
            _table_for(market, req.ticker, day, minute), req.ticker, day, price_factor(factors, day)
        )
        bars = [b for b in bars if req.from_ms <= b.t <= req.to_ms]
        yield from (reversed(bars) if req.descending else bars)


def range_aggs(
    market: MarketLike, req: RangeRequest, today: dt.date
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The response body, and (when capped by `limit`) the path and query of the next page."""
    results: list[dict[str, Any]] = []
    base_count = 0
    bucket: list[Bar] = []
    bucket_t: int | None = None
    resume: Bar | None = None
    for bar in _base_bars(market, req, today):
        t = _bucket_start(bar, req.multiplier, req.timespan, req.anchor)
        if bucket_t is not None and t != bucket_t:
            results.append(_aggregate(bucket_t, bucket))
            base_count += len(bucket)
            bucket = []
            if base_count >= req.limit:
                resume = bar
                break
        bucket_t = t
        bucket.append(bar)
    if resume is None and bucket and bucket_t is not None:
        results.append(_aggregate(bucket_t, bucket))
        base_count += len(bucket)
    body: dict[str, Any] = {
        "ticker": req.ticker,
        "queryCount": base_count,
        "resultsCount": len(results),
        "adjusted": req.adjusted,
    }
    if results:
        body["results"] = results
    next_page = None
    if resume is not None:
        from_ms, to_ms = (req.from_ms, resume.t) if req.descending else (resume.t, req.to_ms)
        next_page = {
            "path": f"/v2/aggs/ticker/{req.ticker}/range/{req.multiplier}/{req.timespan}/{from_ms}/{to_ms}",
            "params": {
                "adjusted": "true" if req.adjusted else "false",
                "sort": "desc" if req.descending else "asc",
                "limit": str(req.limit),
                "anchor": req.anchor.isoformat(),
            },
        }
    return body, next_page


def grouped_daily(market: MarketLike, day: dt.date, adjusted: bool, today: dt.date) -> dict[str, Any]:
    """Every stock's bar for one session; empty (not an error) on holidays and days not yet served."""
    body: dict[str, Any] = {"queryCount": 0, "resultsCount": 0, "adjusted": adjusted}
    if day > today or day not in set(market.sessions):
        return body
    table = market.stock_day_aggs(day)
    factors: dict[str, float] = {}
    if adjusted:
        for split in market.splits():
            executed = dt.date.fromisoformat(split["execution_date"])
            if day < executed <= today:
                ratio = float(split["split_from"]) / float(split["split_to"])
                factors[split["ticker"]] = factors.get(split["ticker"], 1.0) * ratio
    close_ms = int(calendar.session_bounds(day)[1].timestamp() * 1000)
    cols = {name: table[name].to_pylist() for name in table.column_names}
    results = []
    for i in range(table.num_rows):
        ticker = cols["ticker"][i]
        factor = factors.get(ticker, 1.0)
        bar = Bar(
            t=close_ms,
            o=cols["open"][i] * factor,
            h=cols["high"][i] * factor,
            low=cols["low"][i] * factor,
            c=cols["close"][i] * factor,
            v=cols["volume"][i] / factor,
            n=int(cols["transactions"][i] or 0),
            day=day,
        )
        row = _aggregate(close_ms, [bar])
        results.append({"T": ticker, **row})
    body["queryCount"] = len(results)
    body["resultsCount"] = len(results)
    if results:
        body["results"] = results
    return body
