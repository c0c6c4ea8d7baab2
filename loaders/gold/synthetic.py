"""Synthetic silver marts in the contract's shape, for the gold tests and benchmark.

Tickers list and delist inside the range, skip random sessions (halts), split once in a while (the
factor history changes) and include the awkward names (``ABCpA`` beside ``ABCPA``, ``BRK.B``, ``CON``),
so the exporter meets every case the real marts produce without needing the whole pipeline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from loaders import calendar as nyse

AWKWARD_TICKERS: tuple[str, ...] = ("ABCpA", "ABCPA", "BRK.B", "CON", "KIMpL", "AUX", "A", "NA")


def ticker_names(count: int) -> list[str]:
    """``count`` distinct tickers, the awkward ones first."""
    names = list(AWKWARD_TICKERS[:count])
    i = 0
    while len(names) < count:
        i += 1
        name, n = "", i
        while n:
            n, r = divmod(n - 1, 26)
            name = chr(65 + r) + name
        name = "T" + name
        if name not in names:
            names.append(name)
    return sorted(names)


def daily_table(
    tickers: int,
    start: dt.date,
    end: dt.date,
    seed: int = 7,
    features: Sequence[str] = ("return_1d", "rsi_14"),
) -> pa.Table:
    """Rows of ``fct_stock_features_daily`` (ticker, session_date) sorted by ticker and date."""
    rng = np.random.default_rng(seed)
    days = np.array(nyse.sessions(start, end), dtype="datetime64[D]")
    n_days = len(days)
    names = ticker_names(tickers)
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "d", "close", "factor", "volume", "spread")}
    for i in range(len(names)):
        lo, hi = 0, n_days
        if i % 3 == 1:  # listed late
            lo = int(rng.integers(0, max(1, n_days // 2)))
        if i % 5 == 2:  # delisted early
            hi = int(rng.integers(max(lo + 1, n_days // 2), n_days + 1))
        idx = np.arange(lo, hi)
        idx = idx[rng.random(idx.size) > 0.02] if idx.size > 2 else idx  # halts
        if idx.size == 0:
            idx = np.array([lo])
        steps = rng.normal(0.0003, 0.02, idx.size)
        close = 20.0 * np.exp(np.cumsum(steps)) * (1 + i % 17)
        factor = np.ones(idx.size)
        if i % 4 == 0 and idx.size > 10:  # a 2:1 split: earlier raw prices are twice the adjusted ones
            cut = int(rng.integers(1, idx.size))
            factor[:cut] = 0.5
        cols["t"].append(np.full(idx.size, i))
        cols["d"].append(days[idx])
        cols["close"].append(close)
        cols["factor"].append(factor)
        cols["volume"].append(rng.integers(100, 5_000_000, idx.size).astype(np.float64))
        cols["spread"].append(np.abs(rng.normal(0.01, 0.005, idx.size)))
    t = np.concatenate(cols["t"])
    adj_close = np.concatenate(cols["close"])
    factor = np.concatenate(cols["factor"])
    spread = np.concatenate(cols["spread"])
    volume = np.concatenate(cols["volume"])
    adj_high = adj_close * (1 + spread)
    adj_low = adj_close * (1 - spread)
    adj_open = adj_low + (adj_high - adj_low) * rng.random(t.size)
    adj_vwap = (adj_high + adj_low + adj_close) / 3
    first_row = np.concatenate(([True], t[1:] != t[:-1]))
    prev = np.concatenate(([np.nan], adj_close[:-1]))
    change = np.where(first_row, np.nan, adj_close / prev - 1)
    raw = {
        k: v / factor
        for k, v in (
            ("open", adj_open),
            ("high", adj_high),
            ("low", adj_low),
            ("close", adj_close),
            ("vwap", adj_vwap),
        )
    }
    data: dict[str, pa.Array] = {
        "ticker": pa.array(np.array(names, dtype=object)[t], pa.string()),
        "session_date": pa.array(np.concatenate(cols["d"]), pa.date32()),
        **{k: pa.array(v) for k, v in raw.items()},
        "volume": pa.array(volume),
        "vwap_source": pa.array(np.full(t.size, "daily_typical_price", dtype=object), pa.string()),
        "adj_factor": pa.array(factor),
        "adj_open": pa.array(adj_open),
        "adj_high": pa.array(adj_high),
        "adj_low": pa.array(adj_low),
        "adj_close": pa.array(adj_close),
        "adj_volume": pa.array(volume / factor),
        "adj_vwap": pa.array(adj_vwap),
        "change": pa.array(change, mask=np.isnan(change)),
    }
    for k, name in enumerate(features):
        if name == "return_1d":
            data[name] = pa.array(change, mask=np.isnan(change))
        else:
            values = rng.random(t.size) * 100 + k
            missing = rng.random(t.size) < 0.05
            data[name] = pa.array(values, mask=missing)
    return pa.table(data)


def minute_table(
    daily: pa.Table, sessions: Sequence[dt.date], tickers: Sequence[str], seed: int = 11
) -> pa.Table:
    """Rows of ``stg_polygon__stocks_minute`` for the given sessions and tickers, plus pre-market bars."""
    rng = np.random.default_rng(seed)
    wanted = set(tickers)
    table = daily.select(["ticker", "session_date", "close"]).to_pylist()
    closes = {(r["ticker"], r["session_date"]): r["close"] for r in table if r["ticker"] in wanted}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("ticker", "ts", "day", "close", "volume")}
    for ticker in sorted(wanted):
        for day in sessions:
            close = closes.get((ticker, day))
            if close is None:
                continue
            grid = nyse.regular_minutes(day).as_unit("ns").asi8
            grid = grid[rng.random(grid.size) > 0.1]
            premarket = (
                np.array([grid[0] - 3_600_000_000_000, grid[0] - 60_000_000_000]) if grid.size else grid
            )
            ts = np.concatenate((premarket, grid))
            parts["ticker"].append(np.full(ts.size, ticker, dtype=object))
            parts["ts"].append(ts)
            parts["day"].append(np.full(ts.size, np.datetime64(day, "D")))
            parts["close"].append(close * np.exp(rng.normal(0, 0.001, ts.size)))
            parts["volume"].append(rng.integers(1, 10_000, ts.size).astype(np.float64))
    ts = np.concatenate(parts["ts"])
    close = np.concatenate(parts["close"])
    return pa.table(
        {
            "ticker": pa.array(np.concatenate(parts["ticker"]), pa.string()),
            "bar_start_at": pa.array(ts, pa.timestamp("ns", "UTC")).cast(pa.timestamp("us", "UTC")),
            "session_date": pa.array(np.concatenate(parts["day"]), pa.date32()),
            "open": pa.array(close * 0.9995),
            "high": pa.array(close * 1.001),
            "low": pa.array(close * 0.999),
            "close": pa.array(close),
            "volume": pa.array(np.concatenate(parts["volume"])),
            "transactions": pa.array(np.ones(ts.size, dtype=np.int64)),
        }
    )


def write_silver(path: Path, daily: pa.Table, minute: pa.Table | None = None) -> None:
    """Create (or replace) the two marts in a DuckDB file: daily in ``main``, minute in ``main_staging``."""
    con = duckdb.connect(str(path))
    try:
        con.register("daily_src", daily)
        con.execute("create or replace table main.fct_stock_features_daily as select * from daily_src")
        con.unregister("daily_src")
        if minute is not None:
            con.execute("create schema if not exists main_staging")
            con.register("minute_src", minute)
            con.execute(
                "create or replace table main_staging.stg_polygon__stocks_minute as select * from minute_src"
            )
            con.unregister("minute_src")
    finally:
        con.close()
