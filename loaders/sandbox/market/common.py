"""What every subject of the synthetic market shares: its config, seeds, the always-present tickers,
the memo of per-day results and the numeric helpers."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from loaders import calendar

T = TypeVar("T")

# dataset codes mixed into per-day seeds so datasets of one day are independent streams
_SEED_DAILY = 1
_SEED_STOCK_MINUTE = 2
_SEED_OPTION_DAY = 3
_SEED_OPTION_MINUTE = 4
_SEED_NEWS = 5
_SEED_FIN = 6
_SEED_SHORT = 7
_SEED_UNIVERSE = 8

_NS = 1_000_000_000
_RATE = 0.04  # risk-free rate used to price options


@dataclass(frozen=True)
class MarketConfig:
    """Scale and seed of a synthetic market; equal configs give byte-identical data."""

    seed: int = 42
    start: dt.date = dt.date(2024, 1, 2)  # first calendar day of the market
    end: dt.date = dt.date(2025, 12, 31)  # last calendar day the market can ever reach
    tickers: int = 60  # stock universe size (awkward tickers always included)
    option_underlyings: int = (
        4  # underlyings with chains (incl. one root != underlying, one root with digits)
    )
    contracts_per_underlying: int = 40  # listed contracts per underlying per day (weekly + monthly expiries)
    minute: bool = True  # serve minute aggregates
    today: dt.date | None = None  # initial sandbox clock (default: last session <= end)
    fractional_volume: bool = False  # stock volumes with fractional shares, as Polygon sometimes serves

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"MarketConfig: seed must be >= 0, got {self.seed}")
        if self.end < self.start:
            raise ValueError(f"MarketConfig: end {self.end} is before start {self.start}")
        if self.tickers < 1:
            raise ValueError(f"MarketConfig: tickers must be >= 1, got {self.tickers}")
        if self.option_underlyings < 0:
            raise ValueError(f"MarketConfig: option_underlyings must be >= 0, got {self.option_underlyings}")
        if self.contracts_per_underlying < 2:
            raise ValueError(
                f"MarketConfig: contracts_per_underlying must be >= 2, got {self.contracts_per_underlying}"
            )
        if self.today is not None and not (self.start <= self.today <= self.end):
            raise ValueError(f"MarketConfig: today {self.today} is outside [{self.start}, {self.end}]")


@dataclass(frozen=True)
class _Special:
    ticker: str
    name: str
    type: str
    exchange: str
    price: float
    sigma: float


# Tickers that are always present: each exercises something loaders get wrong in practice.
_SPECIALS: tuple[_Special, ...] = (
    _Special(
        "XYZ", "XYZ Industries Inc.", "CS", "XNYS", 90.0, 0.35
    ),  # 3-for-2 split; options root XYZ1 after it
    _Special("BRK.B", "Berkshire Hathaway Inc. Class B", "CS", "XNYS", 410.0, 0.18),  # dot; options root BRKB
    _Special("SPY", "SPDR S&P 500 ETF Trust", "ETF", "ARCX", 475.0, 0.15),
    _Special("ABCpA", "ABC Financial Corp 6.25% Series A Preferred", "PFD", "XNYS", 24.5, 0.06),
    _Special(
        "ABCPA", "ABC Pacific Airlines Inc. Class A", "CS", "XNAS", 15.0, 0.45
    ),  # differs from ABCpA by case
    _Special(
        "CON", "Con Global Holdings Inc.", "CS", "XNYS", 40.0, 0.3
    ),  # Windows device name; halted one day
    _Special("NEWC", "Newco Brands Inc.", "CS", "XNAS", 55.0, 0.3),  # renamed from LGCY inside the range
    _Special("NWIP", "Newly Public Technologies Inc.", "CS", "XNAS", 22.0, 0.6),  # IPO inside the range
    _Special("GONE", "Gone Retail Corp.", "CS", "XNYS", 3.0, 0.7),  # 1-for-10 reverse split, then delisted
)
_RENAMED_FROM = "LGCY"
_ADJUSTED_ROOT = {"XYZ": "XYZ1"}  # root of contracts adjusted by the underlying's non-standard split
_OPTION_ROOT = {"BRK.B": "BRKB"}


class _Memo:
    """Small thread-safe LRU: concurrent requests for one key compute it once, others wait."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._locks: dict[Any, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: Any, compute: Callable[[], T]) -> T:
        with self._guard:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._data:
                    return self._data[key]
            value = compute()
            with self._guard:
                self._data[key] = value
                while len(self._data) > self._size:
                    self._data.popitem(last=False)
                self._locks.pop(key, None)
            return value


def _event_id(*parts: object) -> str:
    return "E" + hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def _ny_midnight_ns(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=calendar.NEW_YORK).timestamp()) * _NS


def _utc_iso(ts: dt.datetime) -> str:
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """AR(1) along axis 1 (x_t = phi * x_{t-1} + e_t): one vector step per session, no scipy import."""
    out = np.empty_like(shocks)
    out[:, 0] = shocks[:, 0]
    for t in range(1, shocks.shape[1]):
        out[:, t] = phi * out[:, t - 1] + shocks[:, t]
    return out


def _ndtr(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Abramowitz-Stegun 7.1.26, |error| < 1.5e-7): far below a cent on any price."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _round_grid(x: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Round to a per-element tick (1/scale); monotone and idempotent, so inequalities survive it."""
    return np.round(x * scale) / scale


def _group_starts(counts: np.ndarray) -> np.ndarray:
    return np.cumsum(counts) - counts


def _first_where_max(x: np.ndarray, groups: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index of the first maximum of `x` within each (contiguous, non-empty) group."""
    gmax = np.maximum.reduceat(x, starts)
    idx = np.flatnonzero(x == gmax[groups])
    keep = np.ones(idx.size, dtype=bool)
    keep[1:] = groups[idx[1:]] != groups[idx[:-1]]
    return idx[keep]


def _allocate(total: np.ndarray, weights: np.ndarray, groups: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Split integer `total` of each group over its rows by weight; sums are exact (remainder to row 0)."""
    wsum = np.add.reduceat(weights, starts)
    alloc = np.floor(total[groups] * (weights / wsum[groups])).astype(np.int64)
    rem = total - np.add.reduceat(alloc, starts)
    alloc[starts] += rem
    return alloc


def _intraday(
    rng: np.random.Generator,
    day: dict[str, np.ndarray],
    counts: np.ndarray,
    slots: np.ndarray,
    session_minutes: int,
) -> dict[str, np.ndarray]:
    """Minute bars that aggregate exactly to the given day bars.

    A Brownian bridge from open to close, scaled to stay inside [low, high]; the first minute reaching the
    extremes is pinned to the day's high/low. Volumes and transactions are split with exact sums, at least
    one per traded minute. `slots` are the minute positions (ascending within each group).
    """
    n = counts.size
    groups = np.repeat(np.arange(n), counts)
    starts = _group_starts(counts)
    pos = np.arange(groups.size) - starts[groups]
    k = counts[groups].astype(np.float64)
    o, h, lo, c = day["open"][groups], day["high"][groups], day["low"][groups], day["close"][groups]
    scale = day["scale"][groups]

    z = rng.standard_normal(groups.size)
    cs = np.cumsum(z)
    w_end = cs - (cs[starts] - z[starts])[groups]
    last = starts + counts - 1
    bridge_c = w_end - ((pos + 1) / k) * w_end[last][groups]
    bridge_o = np.empty_like(bridge_c)
    bridge_o[1:] = bridge_c[:-1]
    bridge_o[starts] = 0.0
    base_c = o + (c - o) * ((pos + 1) / k)
    base_o = o + (c - o) * (pos / k)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(
            bridge_c > 0, (h - base_c) / bridge_c, np.where(bridge_c < 0, (lo - base_c) / bridge_c, np.inf)
        )
    room = np.where(np.isfinite(room), np.maximum(room, 0.0), np.inf)
    s = np.minimum.reduceat(room, starts)
    s = np.where(np.isfinite(s), s, 0.0) * rng.uniform(0.5, 0.95, n)
    po = base_o + s[groups] * bridge_o
    pcl = base_c + s[groups] * bridge_c
    po[starts] = o[starts]
    pcl[last] = c[last]
    po = np.clip(po, lo, h)
    pcl = np.clip(pcl, lo, h)
    top = np.maximum(po, pcl)
    bot = np.minimum(po, pcl)
    mh = top + rng.uniform(0, 0.35, groups.size) * (h - top)
    ml = bot - rng.uniform(0, 0.35, groups.size) * (bot - lo)
    po, pcl, mh, ml = (_round_grid(x, scale) for x in (po, pcl, mh, ml))
    mh[_first_where_max(mh, groups, starts)] = h[starts]
    ml[_first_where_max(-ml, groups, starts)] = lo[starts]

    x = (slots + 0.5) / session_minutes
    weights = (1.0 + 2.5 * (2 * x - 1) ** 2) * rng.lognormal(0.0, 0.6, groups.size)
    vol_int = day["volume_int"]
    vol = 1 + _allocate(vol_int - counts, weights, groups, starts)
    tx = 1 + _allocate(day["transactions"] - counts, weights, groups, starts)
    volume: np.ndarray = vol
    frac = day.get("volume_frac")
    if frac is not None:
        volume = vol.astype(np.float64)
        volume[starts] += frac
    return {
        "open": po,
        "high": mh,
        "low": ml,
        "close": pcl,
        "volume": volume,
        "transactions": tx,
        "groups": groups,
    }


def _agg_table(
    tickers: pa.Array, volume: np.ndarray, o: np.ndarray, c: np.ndarray, h: np.ndarray, lo: np.ndarray,
    window_start: np.ndarray, transactions: np.ndarray,
) -> pa.Table:  # fmt: skip
    return pa.table(
        {
            "ticker": tickers,
            "volume": pa.array(volume),
            "open": pa.array(o, pa.float64()),
            "close": pa.array(c, pa.float64()),
            "high": pa.array(h, pa.float64()),
            "low": pa.array(lo, pa.float64()),
            "window_start": pa.array(window_start, pa.int64()),
            "transactions": pa.array(transactions, pa.int64()),
        }
    )


def _number(x: float) -> float | int:
    """Whole numbers as ints, like Polygon's JSON (`"split_to": 20`, `"strike_price": 65`)."""
    return int(x) if float(x).is_integer() else float(x)
