"""Polygon flat files: key layout and gzip CSV rendering of a session's aggregates table.

Bytes are deterministic (gzip mtime 0, fixed compression level per size), so the same market gives the
same ETag on every run and a republished file is the only way an ETag changes.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from loaders import datasets as registry
from loaders.sandbox.market import Market

# every flat-file dataset of the registry is served: dataset name -> Polygon key prefix
_FLATFILES = registry.of_kind("flatfile")
PREFIXES: dict[str, str] = {name: str(d.s3_prefix) for name, d in _FLATFILES.items()}
MINUTE_DATASETS = frozenset(name for name, d in _FLATFILES.items() if d.minute)
HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
COLUMNS = HEADER.split(",")

_KEY_RE = re.compile(
    rf"^(?P<prefix>{'|'.join(re.escape(p) for p in PREFIXES.values())})/(?P<y>\d{{4}})/(?P<m>\d{{2}})/"
    r"(?P<date>(?P=y)-(?P=m)-\d{2})\.csv\.gz$"
)
_DATASET_BY_PREFIX = {v: k for k, v in PREFIXES.items()}
# Large files (minute days of big universes) use level 1: level 6 on 250 MB of CSV takes ~20 s, level 1 ~2 s.
_LARGE_CSV_BYTES = 4 * 1024 * 1024


def _dataset(name: str) -> registry.Dataset:
    try:
        return _FLATFILES[name]
    except KeyError:
        raise ValueError(f"unknown flat-file dataset {name!r}; expected one of {sorted(PREFIXES)}") from None


def key_for(dataset: str, day: dt.date) -> str:
    """`us_stocks_sip/day_aggs_v1/2025/10/2025-10-17.csv.gz` for ("stocks_daily", 2025-10-17)."""
    return _dataset(dataset).key(day)


def parse_key(key: str) -> tuple[str, dt.date]:
    """(dataset, session date) of a flat-file key; ValueError naming the key if it is not one."""
    match = _KEY_RE.match(key)
    if not match:
        raise ValueError(f"not a flat-file key: {key!r}")
    try:
        day = dt.date.fromisoformat(match["date"])
    except ValueError:
        raise ValueError(f"flat-file key {key!r} has an invalid date") from None
    return _DATASET_BY_PREFIX[match["prefix"]], day


def table_for(market: Market, dataset: str, day: dt.date) -> pa.Table:
    """The market's table behind a dataset's file for one session (the entry's `market_table` method)."""
    source: Callable[[dt.date], pa.Table] = getattr(market, str(_dataset(dataset).market_table))
    return source(day)


def render_csv(table: pa.Table) -> bytes:
    """Plain CSV exactly like Polygon's: unquoted header, shortest float repr (`275`, `62.565`)."""
    if table.column_names != COLUMNS:
        raise ValueError(f"flat-file table columns {table.column_names} differ from Polygon's {COLUMNS}")
    buf = io.BytesIO()
    buf.write(HEADER.encode() + b"\n")  # pyarrow quotes header names whatever the quoting style
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    level = 6 if len(data) <= _LARGE_CSV_BYTES else 1
    return gzip.compress(data, compresslevel=level, mtime=0)


def render(table: pa.Table) -> bytes:
    """gzip CSV bytes of an aggregates table (deterministic)."""
    return gzip_bytes(render_csv(table))


def republished(table: pa.Table) -> pa.Table:
    """A corrected version of a file: the first bar's close moves to another price inside its range.

    Keeps the table internally valid (low <= close <= high) while changing the bytes, like Polygon's
    occasional re-publication of a day.
    """
    if table.num_rows == 0:
        return table
    close = table.column("close").to_numpy().copy()
    high = table.column("high").to_numpy()
    low = table.column("low").to_numpy()
    close[0] = low[0] if close[0] != low[0] else high[0]
    if close[0] == table.column("close")[0].as_py():  # single-price bar: nudge up a tick
        close[0] = float(np.round(close[0] + 0.01, 4))
        high = high.copy()
        high[0] = max(high[0], close[0])
        table = table.set_column(COLUMNS.index("high"), "high", pa.array(high))
    return table.set_column(COLUMNS.index("close"), "close", pa.array(close))


def render_file(market: Market, dataset: str, day: dt.date, *, republish: bool = False) -> bytes:
    """The gzip CSV Polygon would serve for `dataset` on `day` (or its republished version)."""
    table = table_for(market, dataset, day)
    return render(republished(table) if republish else table)


def keys_for(market: Market, dataset: str, days: list[dt.date] | None = None) -> list[str]:
    """Keys of every served session (sessions up to the market's clock) for one dataset."""
    if dataset in MINUTE_DATASETS and not market.config.minute:
        return []
    return [key_for(dataset, d) for d in (days if days is not None else market.served_sessions())]
