"""Deterministic synthetic market in Polygon's shapes: the single source every sandbox endpoint serves.

The daily price path of every ticker is generated once for all sessions (cheap: tickers x sessions);
everything per day (minute bars, option chains) is generated on demand from a seed derived from
(seed, dataset, day), so one large day never needs any other day's intraday data. All heavy work is
vectorised with numpy/pyarrow; results are memoised per day so repeated requests are cheap.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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

_PUBLISHERS = (
    {
        "name": "Sandbox Wire",
        "homepage_url": "https://news.sandbox.invalid/",
        "logo_url": "https://news.sandbox.invalid/logo.svg",
        "favicon_url": "https://news.sandbox.invalid/favicon.ico",
    },
    {
        "name": "Synthetic Street Journal",
        "homepage_url": "https://ssj.sandbox.invalid/",
        "logo_url": "https://ssj.sandbox.invalid/logo.svg",
        "favicon_url": "https://ssj.sandbox.invalid/favicon.ico",
    },
    {
        "name": "Market Model Daily",
        "homepage_url": "https://mmd.sandbox.invalid/",
        "logo_url": "https://mmd.sandbox.invalid/logo.svg",
        "favicon_url": "https://mmd.sandbox.invalid/favicon.ico",
    },
)
_NAME_SUFFIXES = (
    "Holdings Inc.",
    "Corp.",
    "Group Inc.",
    "Technologies Inc.",
    "Industries Co.",
    "Partners LP",
)
_SENTIMENT_TEXT = {
    "positive": ("{t} beats expectations", "{t} shares rally on upbeat guidance", "Analysts upgrade {t}"),
    "negative": ("{t} misses estimates", "{t} falls after cautious outlook", "Analysts downgrade {t}"),
    "neutral": ("{t} holds annual meeting", "{t} files quarterly report", "{t} announces board changes"),
}
_REASONING = {
    "positive": "The article reports stronger results and a raised outlook for {t}.",
    "negative": "The article highlights weaker results and lowered guidance for {t}.",
    "neutral": "The article mentions {t} without information likely to move the stock.",
}


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


@dataclass
class _Chain:
    """One listed expiry of one underlying: strikes are fixed when the expiry is listed."""

    underlying: int  # slot
    expiry: dt.date
    list_index: int  # first session index it trades
    expiry_index: int  # last session index it trades
    strikes: np.ndarray
    adjusted_from: int | None = None  # session index from which it trades under the adjusted root


@dataclass
class _Universe:
    names: list[str]
    company: list[str]
    types: list[str]
    exchange: list[str]
    list_index: np.ndarray  # first session index listed
    delist_index: np.ndarray  # first session index no longer listed (len(sessions) if never)
    sigma: np.ndarray
    rename_index: int  # session index from which slot `rename_slot` trades under its new name
    rename_slot: int
    cik: list[str] = field(default_factory=list)
    figi: list[str] = field(default_factory=list)
    share_figi: list[str] = field(default_factory=list)


class Market:
    """The synthetic market: daily path for all sessions, per-day flat-file tables, REST records."""

    def __init__(self, config: MarketConfig | None = None) -> None:
        self.config = config or MarketConfig()
        self.sessions: list[dt.date] = calendar.sessions(self.config.start, self.config.end)
        if not self.sessions:
            raise ValueError(f"MarketConfig: no NYSE session in [{self.config.start}, {self.config.end}]")
        self._index = {d: i for i, d in enumerate(self.sessions)}
        self._lock = threading.RLock()
        today = self.config.today or self.config.end
        self._today_index = int(np.searchsorted(np.array(self.sessions), today, side="right")) - 1
        if self._today_index < 0:
            raise ValueError(f"MarketConfig: no session on or before today {today}")
        self._memo = _Memo(size=24)  # day tables: small
        self._memo_minute = _Memo(size=3)  # minute tables: up to hundreds of MB each on large markets
        self._records = _Memo(size=64)
        self._universe = self._build_universe()
        self._build_daily()
        self._build_options()

    # ------------------------------------------------------------------ clock

    @property
    def today(self) -> dt.date:
        with self._lock:
            return self.sessions[self._today_index]

    def advance(self, sessions: int = 1) -> dt.date:
        """Move the clock forward by `sessions` sessions (never past the last session)."""
        if sessions < 0:
            raise ValueError(f"advance: sessions must be >= 0, got {sessions}")
        with self._lock:
            self._today_index = min(self._today_index + sessions, len(self.sessions) - 1)
            return self.sessions[self._today_index]

    def served_sessions(self) -> list[dt.date]:
        with self._lock:
            return self.sessions[: self._today_index + 1]

    def _day_index(self, day: dt.date) -> int:
        try:
            return self._index[day]
        except KeyError:
            raise KeyError(f"{day} is not an NYSE session of this market") from None

    def _rng(self, code: int, day: dt.date | None = None) -> np.random.Generator:
        return np.random.default_rng([self.config.seed, code, day.toordinal() if day else 0])

    # --------------------------------------------------------------- universe

    def _build_universe(self) -> _Universe:
        cfg = self.config
        rng = self._rng(_SEED_UNIVERSE)
        n_sessions = len(self.sessions)
        specials = list(_SPECIALS)
        taken = {s.ticker for s in specials} | {_RENAMED_FROM}
        n_random = max(0, cfg.tickers - len(specials))
        names: list[str] = []
        if n_random:
            space = 26**2 + 26**3 + 26**4
            draws = rng.choice(space, size=min(space, n_random + len(taken) + 16), replace=False)
            for code in draws.tolist():
                if code < 26**2:
                    length, code = 2, code
                elif code < 26**2 + 26**3:
                    length, code = 3, code - 26**2
                else:
                    length, code = 4, code - 26**2 - 26**3
                letters = []
                for _ in range(length):
                    code, r = divmod(code, 26)
                    letters.append(chr(65 + r))
                name = "".join(letters)
                if name not in taken:
                    taken.add(name)
                    names.append(name)
                if len(names) == n_random:
                    break
        all_names = [s.ticker for s in specials] + names
        n = len(all_names)
        suffix = rng.integers(0, len(_NAME_SUFFIXES), n)
        company = [s.name for s in specials] + [
            f"{t.title()} {_NAME_SUFFIXES[suffix[i + len(specials)]]}" for i, t in enumerate(names)
        ]
        types = [s.type for s in specials] + ["CS"] * len(names)
        exch = rng.choice(np.array(["XNYS", "XNAS"]), n)
        exchange = [s.exchange for s in specials] + exch[len(specials) :].tolist()
        sigma = np.concatenate([[s.sigma for s in specials], rng.lognormal(np.log(0.32), 0.35, len(names))])
        list_index = np.zeros(n, dtype=np.int64)
        delist_index = np.full(n, n_sessions, dtype=np.int64)
        nwip, gone = all_names.index("NWIP"), all_names.index("GONE")
        list_index[nwip] = int(n_sessions * 0.4)
        delist_index[gone] = max(1, int(n_sessions * 0.75))
        # random IPOs and delistings among the generated names (about 3% each)
        if names:
            r = rng.uniform(size=len(names))
            lo = len(specials)
            ipo = r < 0.03
            list_index[lo:][ipo] = rng.integers(1, max(2, n_sessions), ipo.sum())
            dl = (r > 0.97) & (n_sessions > 2)
            delist_index[lo:][dl] = rng.integers(max(1, n_sessions // 2), max(2, n_sessions), dl.sum())
        ciks = rng.integers(1_000_000, 1_999_999, n)
        figi_chars = np.array(list("BCDFGHJKLMNPQRSTVWXYZ0123456789"))
        figis = rng.choice(figi_chars, size=(n, 2, 9))
        return _Universe(
            names=all_names,
            company=company,
            types=types,
            exchange=exchange,
            list_index=list_index,
            delist_index=delist_index,
            sigma=sigma,
            rename_index=max(1, int(n_sessions * 0.6)) if n_sessions > 1 else n_sessions,
            rename_slot=all_names.index("NEWC"),
            cik=[f"{c:010d}" for c in ciks.tolist()],
            figi=["BBG" + "".join(row) for row in figis[:, 0].tolist()],
            share_figi=["BBG" + "".join(row) for row in figis[:, 1].tolist()],
        )

    def _names_on(self, t: int) -> list[str]:
        u = self._universe
        if t >= u.rename_index:
            return u.names
        names = list(u.names)
        names[u.rename_slot] = _RENAMED_FROM
        return names

    def _sorted_names(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(slot order sorted by the tickers' bytes on session t, names as an object array)."""
        names = np.array(self._names_on(t), dtype=object)
        return np.argsort(names, kind="stable"), names

    # ------------------------------------------------------------ daily path

    def _build_daily(self) -> None:
        """Daily OHLCV for every ticker and session, with splits, dividends and halts in raw prices."""
        cfg, u = self.config, self._universe
        rng = self._rng(_SEED_DAILY)
        n, t_n = len(u.names), len(self.sessions)
        specials = {s.ticker: s for s in _SPECIALS}
        p0 = np.array([specials[x].price if x in specials else 0.0 for x in u.names])
        rand_p = rng.lognormal(np.log(30.0), 1.1, n)
        p0 = np.where(p0 > 0, p0, np.clip(rand_p, 0.4, 900.0))
        mu = rng.normal(0.07, 0.15, n) / 252.0
        # volatility clustering: AR(1) in log volatility
        # stationary sd of log volatility = eta_sd / sqrt(1 - phi**2) ~ 0.3: calm and busy regimes, no 100% vol months
        phi, eta_sd = 0.94, 0.10
        eta = rng.standard_normal((n, t_n)) * eta_sd
        logvol = _ar1(eta, phi)
        logvol -= eta_sd**2 / (2 * (1 - phi**2))
        sig_d = (u.sigma / np.sqrt(252.0))[:, None] * np.exp(logvol)
        z = rng.standard_normal((n, t_n))
        ret = mu[:, None] - 0.5 * sig_d**2 + sig_d * z
        close = p0[:, None] * np.exp(np.cumsum(ret, axis=1))
        prev = np.concatenate([p0[:, None], close[:, :-1]], axis=1)
        open_ = prev * np.exp(rng.standard_normal((n, t_n)) * 0.3 * sig_d)
        high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal((n, t_n))) * 0.5 * sig_d)
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal((n, t_n))) * 0.5 * sig_d)
        base_vol = rng.lognormal(np.log(8e5), 1.2, n)
        # typical daily dollar volume / price; the index ETF and the mega-cap trade like them,
        base_vol[u.names.index("SPY")] *= 2000.0
        base_vol[u.names.index("BRK.B")] *= 60.0
        base_vol[u.names.index("ABCpA")] *= 0.02  # preferreds trade thinly
        vol_noise = _ar1(rng.standard_normal((n, t_n)) * 0.35, 0.7)
        volume = base_vol[:, None] * np.exp(vol_noise) * (1.0 + 2.0 * np.abs(z)) / p0[:, None] * 30.0

        # corporate actions: raw = economic / cumulative split ratio * dividend factor
        self._splits: list[tuple[int, int, float, float]] = []  # (slot, session index, split_from, split_to)
        xyz, gone = u.names.index("XYZ"), u.names.index("GONE")
        if t_n > 2:
            self._splits.append((xyz, t_n // 2, 2.0, 3.0))
            self._splits.append((gone, max(1, int(u.delist_index[gone] * 0.8)), 10.0, 1.0))
        if n > len(_SPECIALS):
            r = rng.uniform(size=n)
            for slot in np.flatnonzero(r < 0.04).tolist():
                if slot < len(_SPECIALS) or t_n < 3:
                    continue
                lo_i, hi_i = int(u.list_index[slot]) + 1, int(u.delist_index[slot]) - 1
                if hi_i <= lo_i:
                    continue
                frm, to = (
                    (1.0, 2.0) if close[slot, 0] > 40 else (5.0, 1.0) if close[slot, 0] < 2 else (1.0, 3.0)
                )
                self._splits.append((slot, int(rng.integers(lo_i, hi_i)), frm, to))
        ratio = np.ones((n, t_n))
        for slot, t, frm, to in self._splits:
            ratio[slot, t:] *= to / frm
        # dividends: quarterly for about 40% of common stocks, ETF and preferred; the k-th dividend of
        # every payer is computed at once (its cash depends on the raw price after the earlier ones)
        types = np.array(u.types)
        payer = np.isin(types, ["ETF", "PFD"]) | ((types == "CS") & (rng.uniform(size=n) < 0.4))
        div_yield = rng.uniform(0.002, 0.012, n)
        div_yield[u.names.index("ABCpA")] = 0.0156
        offset = rng.integers(0, 63, n) + 1
        steps = np.ones((n, t_n))
        running = np.ones(n)
        events: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for k in range(t_n // 63 + 1):
            ex = offset + 63 * k
            idx = np.flatnonzero(payer & (ex < t_n) & (u.list_index < ex) & (ex < u.delist_index))
            if idx.size == 0:
                continue
            t = ex[idx]
            prev_raw = close[idx, t - 1] / ratio[idx, t - 1] * running[idx]
            cash = np.round(div_yield[idx] * prev_raw, 4)
            ok = cash > 0
            idx, t, cash, prev_raw = idx[ok], t[ok], cash[ok], prev_raw[ok]
            steps[idx, t] = 1.0 - cash / prev_raw
            running[idx] *= steps[idx, t]
            events.append((idx, t, cash))
        factor = np.cumprod(steps, axis=1)
        del steps
        self._dividends: list[tuple[int, int, float]] = sorted(  # (slot, ex session index, cash)
            (int(i), int(t), float(c)) for idx, ts, cs in events for i, t, c in zip(idx, ts, cs, strict=True)
        )
        adj = factor / ratio
        raw = {"open": open_ * adj, "high": high * adj, "low": low * adj, "close": close * adj}
        scale = np.where(raw["low"] >= 1.0, 100.0, 10000.0)
        for key in raw:
            raw[key] = np.maximum(_round_grid(raw[key], scale), 1.0 / scale)
        raw["high"] = np.maximum.reduce([raw["high"], raw["open"], raw["close"]])
        raw["low"] = np.minimum.reduce([raw["low"], raw["open"], raw["close"]])
        minutes = np.array([390 if not calendar.is_early_close(d) else 210 for d in self.sessions])
        vol_raw = np.maximum(np.floor(volume * ratio), 4.0 * minutes[None, :]).astype(np.int64)
        trade_size = rng.lognormal(np.log(120.0), 0.5, n)
        tx = np.clip((vol_raw / trade_size[:, None]).astype(np.int64), minutes[None, :], vol_raw)
        listed = (np.arange(t_n)[None, :] >= u.list_index[:, None]) & (
            np.arange(t_n)[None, :] < u.delist_index[:, None]
        )
        halted = rng.uniform(size=(n, t_n)) < 0.002
        if t_n >= 3:
            halted[u.names.index("CON"), t_n // 3] = True
        self._halts = halted & listed
        self._present = listed & ~halted
        self._day = raw
        self._scale = scale
        self._volume = vol_raw
        self._tx = tx
        self._minutes = minutes
        if cfg.fractional_volume:
            quarters = rng.integers(0, 4, (n, t_n))
            self._volume_frac: np.ndarray | None = np.where(
                rng.uniform(size=(n, t_n)) < 0.3, quarters / 4.0, 0.0
            )
        else:
            self._volume_frac = None

    def _day_bars(self, t: int, slots: np.ndarray) -> dict[str, np.ndarray]:
        bars = {k: v[slots, t] for k, v in self._day.items()}
        bars["scale"] = self._scale[slots, t]
        bars["volume_int"] = self._volume[slots, t]
        bars["transactions"] = self._tx[slots, t]
        if self._volume_frac is not None:
            bars["volume_frac"] = self._volume_frac[slots, t]
        return bars

    def _stock_rows(self, t: int) -> tuple[np.ndarray, list[str]]:
        order, names = self._sorted_names(t)
        slots = order[self._present[order, t]]
        return slots, names[slots].tolist()

    def stock_day_aggs(self, day: dt.date) -> pa.Table:
        """Polygon `us_stocks_sip/day_aggs_v1` rows of one session (raw, unadjusted prices)."""
        t = self._day_index(day)

        def build() -> pa.Table:
            slots, names = self._stock_rows(t)
            bars = self._day_bars(t, slots)
            volume: np.ndarray = bars["volume_int"]
            if self._volume_frac is not None:
                volume = volume + bars["volume_frac"]
            ws = np.full(slots.size, _ny_midnight_ns(day), dtype=np.int64)
            return _agg_table(
                pa.array(names, pa.string()), volume, bars["open"], bars["close"], bars["high"], bars["low"],
                ws, bars["transactions"],
            )  # fmt: skip

        return self._memo.get(("stock_day", day), build)

    def stock_minute_aggs(self, day: dt.date) -> pa.Table:
        """Polygon `us_stocks_sip/minute_aggs_v1` rows: every regular-hours minute of every traded ticker."""
        t = self._day_index(day)

        def build() -> pa.Table:
            slots, names = self._stock_rows(t)
            m = int(self._minutes[t])
            bars = self._day_bars(t, slots)
            counts = np.full(slots.size, m, dtype=np.int64)
            minute_slots = np.tile(np.arange(m), slots.size)
            rng = self._rng(_SEED_STOCK_MINUTE, day)
            bars_m = _intraday(rng, bars, counts, minute_slots, m)
            open_ns = int(calendar.session_bounds(day)[0].timestamp()) * _NS
            ws = open_ns + minute_slots.astype(np.int64) * 60 * _NS
            tickers = pa.array(names, pa.string()).take(pa.array(bars_m["groups"]))
            return _agg_table(
                tickers, bars_m["volume"], bars_m["open"], bars_m["close"], bars_m["high"], bars_m["low"], ws,
                bars_m["transactions"],
            )  # fmt: skip

        return self._memo_minute.get(("stock_minute", day), build)

    # ---------------------------------------------------------------- options

    def _build_options(self) -> None:
        """Listed expiries per underlying with strikes fixed around the spot on their listing day."""
        cfg, u = self.config, self._universe
        sess = np.array(self.sessions)
        t_n = len(self.sessions)
        candidates = [u.names.index(x) for x in ("XYZ", "BRK.B", "SPY")]
        candidates += [
            i
            for i in range(len(_SPECIALS), len(u.names))
            if u.list_index[i] == 0 and u.delist_index[i] == t_n
        ]
        self._underlyings: list[int] = candidates[: cfg.option_underlyings]
        self._iv = {slot: float(u.sigma[slot]) * 1.1 for slot in self._underlyings}
        # expiries: every Friday (weekly, listed 5 weeks ahead) and third Fridays (monthly, ~3 months ahead)
        first = cfg.start - dt.timedelta(days=cfg.start.weekday()) + dt.timedelta(days=4)
        expiries: list[tuple[dt.date, int]] = []
        d = first
        while d <= cfg.end + dt.timedelta(days=100):
            monthly = 15 <= d.day <= 21
            exp = d if calendar.is_session(d) else calendar.previous_session(d)
            expiries.append((exp, 95 if monthly else 35))
            d += dt.timedelta(days=7)
        per_day = np.zeros(t_n)
        windows = []
        for exp, window in expiries:
            li = int(np.searchsorted(sess, exp - dt.timedelta(days=window), side="left"))
            ei = int(np.searchsorted(sess, exp, side="right")) - 1
            if exp < cfg.start or li >= t_n or ei < li:
                continue
            windows.append((exp, li, ei))
            per_day[li : ei + 1] += 1
        avg_active = max(1.0, float(per_day.mean()))
        per_side = max(1, int(round(cfg.contracts_per_underlying / (2 * avg_active))))
        split_at = {slot: t for slot, t, frm, to in self._splits}
        self._split_mult = {slot: to / frm for slot, t, frm, to in self._splits}
        self._chains: list[_Chain] = []
        xyz = u.names.index("XYZ")
        list_at = np.array([li for _, li, _ in windows], dtype=np.int64)
        offsets = np.arange(per_side) - per_side // 2
        for slot in self._underlyings:
            if not windows:
                break
            spots = self._day["close"][slot, list_at]
            steps = _strike_steps(spots, per_side)
            centers = np.round(spots / steps) * steps
            grid = np.round(centers[:, None] + steps[:, None] * offsets[None, :], 3)
            st = split_at.get(slot)
            for e, (exp, li, ei) in enumerate(windows):
                strikes = grid[e][grid[e] > 0]
                if strikes.size == 0:
                    strikes = steps[e : e + 1].copy()
                adjusted = st if (slot == xyz and st is not None and li < st <= ei) else None
                self._chains.append(_Chain(slot, exp, li, ei, strikes, adjusted))

    def _root(self, chain: _Chain, t: int) -> tuple[str, float]:
        """OCC root and deliverable multiplier of a chain on session t."""
        name = self._universe.names[chain.underlying]
        if chain.adjusted_from is not None and t >= chain.adjusted_from:
            return _ADJUSTED_ROOT[name], self._split_mult[chain.underlying]
        return _OPTION_ROOT.get(name, name), 1.0

    def _contracts_on(self, t: int) -> dict[str, np.ndarray]:
        """All contracts listed on session t, as parallel arrays (unsorted)."""
        day = self.sessions[t]
        prefixes, chain_ids, counts = [], [], []
        strikes, mult, tyears, slot_arr = [], [], [], []
        for ci, ch in enumerate(self._chains):
            if not (ch.list_index <= t <= ch.expiry_index):
                continue
            root, m = self._root(ch, t)
            prefixes.append(f"O:{root}{ch.expiry:%y%m%d}")
            chain_ids.append(ci)
            n = ch.strikes.size
            counts.append(2 * n)
            strikes.append(np.concatenate([ch.strikes, ch.strikes]))
            mult.append(m)
            tyears.append(max((ch.expiry - day).days, 0) / 365.0 + 0.5 / 365.0)
            slot_arr.append(ch.underlying)
        if not counts:
            return {}
        cnt = np.array(counts)
        is_call = np.concatenate([np.repeat([True, False], c // 2) for c in counts])
        return {
            "prefix": np.repeat(np.arange(len(prefixes)), cnt),
            "prefixes": np.array(prefixes, dtype=object),
            "chain": np.repeat(np.array(chain_ids), cnt),
            "strike": np.concatenate(strikes),
            "call": is_call,
            "mult": np.repeat(np.array(mult), cnt),
            "tyears": np.repeat(np.array(tyears), cnt),
            "slot": np.repeat(np.array(slot_arr), cnt),
        }

    @staticmethod
    def _occ_tickers(con: dict[str, np.ndarray], rows: np.ndarray) -> pa.Array:
        prefix = pa.array(con["prefixes"][con["prefix"][rows]].tolist(), pa.string())
        cp = pa.array(np.where(con["call"][rows], "C", "P").tolist(), pa.string())
        strike = pc.utf8_lpad(
            pc.cast(pa.array(np.round(con["strike"][rows] * 1000).astype(np.int64)), pa.string()), 8, "0"
        )
        return pc.binary_join_element_wise(prefix, cp, strike, "")

    def _option_day(self, day: dt.date) -> tuple[pa.Table, dict[str, np.ndarray]]:
        t = self._day_index(day)

        def build() -> tuple[pa.Table, dict[str, np.ndarray]]:
            con = self._contracts_on(t)
            if not con:
                none_i, none_f = np.array([], np.int64), np.array([], np.float64)
                empty = _agg_table(
                    pa.array([], pa.string()), none_i, none_f, none_f, none_f, none_f, none_i, none_i
                )
                return empty, {}
            slot = con["slot"]
            present = self._present[slot, t]
            rng = self._rng(_SEED_OPTION_DAY, day)
            size = slot.size
            iv_by_slot = np.zeros(len(self._universe.names))
            iv_by_slot[self._underlyings] = [self._iv[s] for s in self._underlyings]
            iv = iv_by_slot[slot]
            spot_o = self._day["open"][slot, t] * con["mult"]
            spot_c = self._day["close"][slot, t] * con["mult"]
            k = con["strike"]
            moneyness = np.log(k / spot_c)
            iv = iv * (1.0 + 0.8 * moneyness**2)
            p_open = _black_scholes(spot_o, k, con["tyears"], iv, con["call"])
            p_close = _black_scholes(spot_c, k, con["tyears"], iv, con["call"])
            spread = np.abs(moneyness) / (iv * np.sqrt(con["tyears"]) + 0.02)
            p_trade = 0.95 * np.exp(-0.45 * spread)
            traded = present & (rng.uniform(size=size) < p_trade)
            liq = rng.lognormal(np.log(40.0), 1.3, size) * p_trade
            volume = (1 + np.floor(liq)).astype(np.int64)
            tx = np.clip(np.ceil(volume / rng.uniform(1.0, 6.0, size)).astype(np.int64), 1, volume)
            scale = np.full(size, 100.0)
            o = np.maximum(_round_grid(p_open, scale), 0.01)
            c = np.maximum(_round_grid(p_close, scale), 0.01)
            wig = np.abs(rng.standard_normal((2, size))) * 0.08
            h = np.maximum(_round_grid(np.maximum(o, c) * np.exp(wig[0]), scale), np.maximum(o, c))
            lo = np.maximum(
                np.minimum(_round_grid(np.minimum(o, c) * np.exp(-wig[1]), scale), np.minimum(o, c)), 0.01
            )
            single = tx == 1
            o, h, lo = np.where(single, c, o), np.where(single, c, h), np.where(single, c, lo)
            rows = np.flatnonzero(traded)
            tickers = self._occ_tickers(con, rows)
            order = pc.sort_indices(tickers).to_numpy()
            rows = rows[order]
            tickers = tickers.take(pa.array(order))
            ws = np.full(rows.size, _ny_midnight_ns(day), dtype=np.int64)
            table = _agg_table(tickers, volume[rows], o[rows], c[rows], h[rows], lo[rows], ws, tx[rows])
            return table, {"scale": scale[rows]}

        return self._memo.get(("option_day", day), build)

    def option_day_aggs(self, day: dt.date) -> pa.Table:
        """Polygon `us_options_opra/day_aggs_v1` rows: only contracts that traded (far strikes rarely do)."""
        return self._option_day(day)[0]

    def option_minute_aggs(self, day: dt.date) -> pa.Table:
        """Polygon `us_options_opra/minute_aggs_v1` rows: sparse minutes that add up to the day bars."""
        t = self._day_index(day)

        def build() -> pa.Table:
            table, extra = self._option_day(day)
            if table.num_rows == 0:
                return table
            m = int(self._minutes[t])
            rng = self._rng(_SEED_OPTION_MINUTE, day)
            tx = table.column("transactions").to_numpy()
            n = tx.size
            draws = np.minimum(tx, m)
            g = np.repeat(np.arange(n), draws)
            keys = np.sort(g * m + rng.integers(0, m, g.size))  # np.unique's hash path is far slower
            keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
            groups, slots = keys // m, keys % m
            counts = np.bincount(groups, minlength=n)
            bars = {
                "open": table.column("open").to_numpy(),
                "high": table.column("high").to_numpy(),
                "low": table.column("low").to_numpy(),
                "close": table.column("close").to_numpy(),
                "scale": extra["scale"],
                "volume_int": table.column("volume").to_numpy(),
                "transactions": tx,
            }
            bars_m = _intraday(rng, bars, counts, slots, m)
            open_ns = int(calendar.session_bounds(day)[0].timestamp()) * _NS
            ws = open_ns + slots.astype(np.int64) * 60 * _NS
            tickers = table.column("ticker").combine_chunks().take(pa.array(bars_m["groups"]))
            return _agg_table(
                tickers, bars_m["volume"], bars_m["open"], bars_m["close"], bars_m["high"], bars_m["low"], ws,
                bars_m["transactions"],
            )  # fmt: skip

        return self._memo_minute.get(("option_minute", day), build)

    def options_contracts(self, as_of: dt.date | None = None) -> list[dict]:
        """Contracts listed on `as_of` (default: today), in Polygon's reference shape, sorted by ticker."""
        as_of = as_of or self.today
        sess = np.array(self.sessions)
        t = int(np.searchsorted(sess, as_of, side="right")) - 1
        if t < 0:
            return []

        def build() -> list[dict]:
            con = self._contracts_on(t)
            if not con:
                return []
            rows = np.arange(con["strike"].size)
            tickers = self._occ_tickers(con, rows).to_pylist()
            out = []
            for i, ticker in enumerate(tickers):
                ch = self._chains[int(con["chain"][i])]
                mult = float(con["mult"][i])
                record = {
                    "cfi": "OCASPS" if con["call"][i] else "OPASPS",
                    "contract_type": "call" if con["call"][i] else "put",
                    "exercise_style": "american",
                    "expiration_date": ch.expiry.isoformat(),
                    "primary_exchange": "BATO",
                    "shares_per_contract": int(round(100 * mult)),
                    "strike_price": _number(float(con["strike"][i])),
                    "ticker": ticker,
                    "underlying_ticker": self._universe.names[ch.underlying],
                }
                if mult != 1.0:
                    record["additional_underlyings"] = [
                        {
                            "type": "equity",
                            "underlying": self._universe.names[ch.underlying],
                            "amount": 100 * mult,
                        }
                    ]
                out.append(record)
            out.sort(key=lambda r: r["ticker"])
            return out

        return self._records.get(("contracts", t), build)

    # ------------------------------------------------------------- reference

    def _listed_name(self, slot: int, t: int) -> str:
        u = self._universe
        return _RENAMED_FROM if slot == u.rename_slot and t < u.rename_index else u.names[slot]

    def tickers(self, as_of: dt.date | None = None) -> list[dict]:
        """Every ticker listed on or before `as_of` (default: today), with `active` and `delisted_utc`."""
        as_of = as_of or self.today
        t = int(np.searchsorted(np.array(self.sessions), as_of, side="right")) - 1

        def build() -> list[dict]:
            u = self._universe
            out = []
            for slot in range(len(u.names)):
                if t < 0 or u.list_index[slot] > t:
                    continue
                delisted = u.delist_index[slot] <= t
                list_day = self.sessions[int(u.list_index[slot])]
                record: dict[str, Any] = {
                    "ticker": self._listed_name(slot, t),
                    "name": u.company[slot],
                    "market": "stocks",
                    "locale": "us",
                    "primary_exchange": u.exchange[slot],
                    "type": u.types[slot],
                    "active": not delisted,
                    "currency_name": "usd",
                    "cik": u.cik[slot],
                    "composite_figi": u.figi[slot],
                    "share_class_figi": u.share_figi[slot],
                    "list_date": list_day.isoformat(),
                    "last_updated_utc": f"{self.sessions[t].isoformat()}T00:00:00Z",
                }
                if delisted:
                    gone = self.sessions[int(u.delist_index[slot])]
                    record["delisted_utc"] = _utc_iso(
                        dt.datetime(gone.year, gone.month, gone.day, tzinfo=calendar.NEW_YORK)
                    )
                out.append(record)
            out.sort(key=lambda r: r["ticker"])
            return out

        return self._records.get(("tickers", t), build)

    def splits(self) -> list[dict]:
        """Splits announced by today (two weeks ahead of execution, as issuers do), by execution date."""
        today = self.today
        out = []
        for slot, t, frm, to in self._splits:
            day = self.sessions[t]
            if day - dt.timedelta(days=14) > today:
                continue
            out.append(
                {
                    "id": _event_id("split", self._universe.names[slot], day),
                    "execution_date": day.isoformat(),
                    "split_from": _number(frm),
                    "split_to": _number(to),
                    "ticker": self._listed_name(slot, t),
                }
            )
        out.sort(key=lambda r: (r["execution_date"], r["ticker"]))
        return out

    def dividends(self) -> list[dict]:
        """Quarterly cash dividends declared by today; raw prices drop by the cash amount on the ex date."""
        today = self.today
        out = []
        for slot, t, cash in self._dividends:
            ex = self.sessions[t]
            declared = ex - dt.timedelta(days=21)
            if declared > today:
                continue
            out.append(
                {
                    "id": _event_id("dividend", self._universe.names[slot], ex),
                    "cash_amount": cash,
                    "currency": "USD",
                    "declaration_date": declared.isoformat(),
                    "dividend_type": "CD",
                    "ex_dividend_date": ex.isoformat(),
                    "frequency": 4,
                    "pay_date": (ex + dt.timedelta(days=17)).isoformat(),
                    "record_date": (ex + dt.timedelta(days=1)).isoformat(),
                    "ticker": self._listed_name(slot, t),
                }
            )
        out.sort(key=lambda r: (r["ex_dividend_date"], r["ticker"]))
        return out

    def ticker_events(self, ticker: str) -> dict:
        """Ticker-change history of a ticker (as known today); KeyError for an unknown ticker."""
        u = self._universe
        t = self._today_index
        slot = None
        for i in range(len(u.names)):
            if self._listed_name(i, t) == ticker or (i == u.rename_slot and ticker == _RENAMED_FROM):
                slot = i
                break
        if slot is None or u.list_index[slot] > t:
            raise KeyError(f"unknown ticker {ticker!r}")
        events = []
        if slot == u.rename_slot and t >= u.rename_index:
            events.append(
                {
                    "ticker_change": {"ticker": u.names[slot]},
                    "type": "ticker_change",
                    "date": self.sessions[u.rename_index].isoformat(),
                }
            )
        events.append(
            {
                "ticker_change": {"ticker": self._listed_name(slot, int(u.list_index[slot]))},
                "type": "ticker_change",
                "date": self.sessions[int(u.list_index[slot])].isoformat(),
            }
        )
        return {"name": u.company[slot], "composite_figi": u.figi[slot], "cik": u.cik[slot], "events": events}

    def market_holidays(self) -> list[dict]:
        """Upcoming NYSE/NASDAQ closures and early closes in the year after today."""
        today = self.today
        horizon = today + dt.timedelta(days=365)
        out: list[dict] = []
        for day in calendar.holidays(today + dt.timedelta(days=1), horizon):
            for exchange in ("NYSE", "NASDAQ"):
                out.append(
                    {
                        "exchange": exchange,
                        "name": _holiday_name(day),
                        "date": day.isoformat(),
                        "status": "closed",
                    }
                )
        for day in calendar.sessions(today + dt.timedelta(days=1), horizon):
            if not calendar.is_early_close(day):
                continue
            open_, close = calendar.session_bounds(day)
            for exchange in ("NYSE", "NASDAQ"):
                out.append(
                    {
                        "exchange": exchange,
                        "name": _holiday_name(day),
                        "date": day.isoformat(),
                        "status": "early-close",
                        "open": open_.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                        "close": close.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    }
                )
        out.sort(key=lambda r: (r["date"], r["exchange"]))
        return out

    # ------------------------------------------------------------- REST data

    def news(self) -> list[dict]:
        """Articles published up to today's close, oldest first, with tickers and per-ticker insights."""
        t_today = self._today_index

        def build_all() -> list[dict]:
            u = self._universe
            rng = self._rng(_SEED_NEWS)
            t_n = len(self.sessions)
            per_day = max(2, min(20, len(u.names) // 20))
            out = []
            counts = rng.poisson(per_day, t_n)
            for t, day in enumerate(self.sessions):
                listed = np.flatnonzero((u.list_index <= t) & (u.delist_index > t))
                if listed.size == 0:
                    continue
                for j in range(int(counts[t])):
                    k = int(min(listed.size, rng.integers(1, 4)))
                    slots = rng.choice(listed, size=k, replace=False).tolist()
                    names = [self._listed_name(s, t) for s in slots]
                    r = float(self._day["close"][slots[0], t] / self._day["open"][slots[0], t] - 1.0)
                    lead = "positive" if r > 0.01 else "negative" if r < -0.01 else "neutral"
                    sentiments = [lead] + rng.choice(["positive", "negative", "neutral"], size=k - 1).tolist()
                    minute = int(rng.integers(7 * 60, 20 * 60))
                    published = dt.datetime(
                        day.year,
                        day.month,
                        day.day,
                        minute // 60,
                        minute % 60,
                        int(rng.integers(0, 60)),
                        tzinfo=calendar.NEW_YORK,
                    )
                    title = _SENTIMENT_TEXT[lead][int(rng.integers(0, 3))].format(t=u.company[slots[0]])
                    digest = hashlib.sha256(f"{self.config.seed}|{day}|{j}".encode()).digest()
                    aid = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                    slug = f"{day:%Y/%m/%d}/{names[0].lower().replace('.', '-')}-{j}"
                    publisher = _PUBLISHERS[int(rng.integers(0, len(_PUBLISHERS)))]
                    out.append(
                        (
                            t,
                            {
                                "id": aid,
                                "publisher": dict(publisher),
                                "title": title,
                                "author": f"{publisher['name']} Staff",
                                "published_utc": _utc_iso(published),
                                "article_url": f"{publisher['homepage_url']}{slug}",
                                "tickers": names,
                                "amp_url": f"{publisher['homepage_url']}amp/{slug}",
                                "image_url": f"{publisher['homepage_url']}img/{aid[:12]}.jpg",
                                "description": f"{title}. Coverage of {', '.join(names)}.",
                                "keywords": ["earnings" if lead != "neutral" else "corporate", "stocks"],
                                "insights": [
                                    {
                                        "ticker": name,
                                        "sentiment": s,
                                        "sentiment_reasoning": _REASONING[s].format(t=name),
                                    }
                                    for name, s in zip(names, sentiments, strict=True)
                                ],
                            },
                        )
                    )
            out.sort(key=lambda x: (x[1]["published_utc"], x[1]["id"]))
            return out

        everything = self._records.get(("news",), build_all)
        cutoff = _utc_iso(calendar.session_bounds(self.sessions[t_today])[1] + dt.timedelta(hours=4))
        return [rec for t, rec in everything if t <= t_today and rec["published_utc"] <= cutoff]

    def financials(self) -> list[dict]:
        """Quarterly statements of common stocks filed by today (filing 25-45 days after period end)."""
        today = self.today

        def build_all() -> list[dict]:
            u = self._universe
            rng = self._rng(_SEED_FIN)
            out = []
            first_q = _quarter_end(self.config.start - dt.timedelta(days=370))
            quarters = []
            q = first_q
            while q <= self.config.end:
                quarters.append(q)
                q = _quarter_end(q + dt.timedelta(days=1))
            shares = rng.lognormal(np.log(2e8), 1.0, len(u.names))
            for slot in range(len(u.names)):
                if u.types[slot] != "CS":
                    continue
                revenue = float(self._day["close"][slot, 0]) * shares[slot] * rng.uniform(0.05, 0.3)
                margin = rng.uniform(-0.05, 0.3)
                for q_end in quarters:
                    revenue *= float(np.exp(rng.normal(0.015, 0.05)))
                    filed = q_end + dt.timedelta(days=int(rng.integers(25, 46)))
                    q_start = _quarter_start(q_end)
                    cogs = revenue * rng.uniform(0.4, 0.7)
                    opex = revenue * rng.uniform(0.1, 0.25)
                    op_income = revenue - cogs - opex
                    net = revenue * (margin + rng.normal(0, 0.03))
                    assets = revenue * rng.uniform(3, 6)
                    liabilities = assets * rng.uniform(0.3, 0.7)
                    equity = assets - liabilities
                    ocf = net * rng.uniform(0.9, 1.4)
                    icf = -abs(revenue) * rng.uniform(0.02, 0.1)
                    fcf = -abs(net) * rng.uniform(0.0, 0.6)
                    eps = net / shares[slot]
                    fin = {
                        "income_statement": _items(
                            ("revenues", "Revenues", revenue, "USD", 100),
                            ("cost_of_revenue", "Cost Of Revenue", cogs, "USD", 300),
                            ("gross_profit", "Gross Profit", revenue - cogs, "USD", 800),
                            ("operating_expenses", "Operating Expenses", opex, "USD", 1000),
                            ("operating_income_loss", "Operating Income/Loss", op_income, "USD", 1100),
                            ("net_income_loss", "Net Income/Loss", net, "USD", 3200),
                            (
                                "basic_earnings_per_share",
                                "Basic Earnings Per Share",
                                round(eps, 2),
                                "USD / shares",
                                4200,
                            ),
                            (
                                "diluted_earnings_per_share",
                                "Diluted Earnings Per Share",
                                round(eps * 0.98, 2),
                                "USD / shares",
                                4300,
                            ),
                        ),
                        "balance_sheet": _items(
                            ("assets", "Assets", assets, "USD", 100),
                            ("current_assets", "Current Assets", assets * 0.35, "USD", 200),
                            ("liabilities", "Liabilities", liabilities, "USD", 600),
                            ("current_liabilities", "Current Liabilities", liabilities * 0.4, "USD", 700),
                            ("equity", "Equity", equity, "USD", 1400),
                            (
                                "equity_attributable_to_parent",
                                "Equity Attributable To Parent",
                                equity,
                                "USD",
                                1600,
                            ),
                            ("liabilities_and_equity", "Liabilities And Equity", assets, "USD", 1900),
                        ),
                        "cash_flow_statement": _items(
                            (
                                "net_cash_flow_from_operating_activities",
                                "Net Cash Flow From Operating Activities",
                                ocf,
                                "USD",
                                100,
                            ),
                            (
                                "net_cash_flow_from_investing_activities",
                                "Net Cash Flow From Investing Activities",
                                icf,
                                "USD",
                                400,
                            ),
                            (
                                "net_cash_flow_from_financing_activities",
                                "Net Cash Flow From Financing Activities",
                                fcf,
                                "USD",
                                700,
                            ),
                            ("net_cash_flow", "Net Cash Flow", ocf + icf + fcf, "USD", 1100),
                        ),
                        "comprehensive_income": _items(
                            ("comprehensive_income_loss", "Comprehensive Income/Loss", net, "USD", 100),
                            (
                                "comprehensive_income_loss_attributable_to_parent",
                                "Comprehensive Income/Loss Attributable To Parent",
                                net,
                                "USD",
                                300,
                            ),
                        ),
                    }
                    accession = f"{u.cik[slot]}-{filed:%y}-{int(rng.integers(1, 99999)):06d}"
                    fp = f"Q{(q_end.month - 1) // 3 + 1}"
                    out.append(
                        (
                            filed,
                            slot,
                            {
                                "start_date": q_start.isoformat(),
                                "end_date": q_end.isoformat(),
                                "filing_date": filed.isoformat(),
                                "acceptance_datetime": f"{filed.isoformat()}T20:05:00Z",
                                "timeframe": "quarterly",
                                "fiscal_period": fp,
                                "fiscal_year": str(q_end.year),
                                "cik": u.cik[slot],
                                "company_name": u.company[slot],
                                "source_filing_url": f"https://api.sandbox.invalid/v1/reference/sec/filings/{accession}",
                                "source_filing_file_url": f"https://api.sandbox.invalid/v1/reference/sec/filings/{accession}/files/report.xml",
                                "financials": fin,
                            },
                        )
                    )
            out.sort(key=lambda x: (x[0], u.names[x[1]]))
            return out

        everything = self._records.get(("financials",), build_all)
        t = self._today_index
        out = []
        for filed, slot, rec in everything:
            if filed > today or self._universe.list_index[slot] > t:
                continue
            out.append({**rec, "tickers": [self._listed_name(slot, t)]})
        return out

    def short_interest(self) -> list[dict]:
        """Twice-monthly short interest (mid-month and month-end settlement dates) up to today."""
        t_today = self._today_index

        def build_all() -> list[tuple[int, dict]]:
            u = self._universe
            rng = self._rng(_SEED_SHORT, dt.date(1970, 1, 2))
            sess = np.array(self.sessions)
            settlements: list[int] = []
            y, m = self.config.start.year, self.config.start.month
            while dt.date(y, m, 1) <= self.config.end:
                nxt = dt.date(y + (m == 12), m % 12 + 1, 1)
                for target in (dt.date(y, m, 15), nxt - dt.timedelta(days=1)):
                    i = int(np.searchsorted(sess, target, side="right")) - 1
                    if i >= 0 and (not settlements or settlements[-1] != i):
                        settlements.append(i)
                y, m = nxt.year, nxt.month
            ratio = rng.uniform(0.5, 8.0, len(u.names))
            out = []
            for i in settlements:
                lo = max(0, i - 19)
                for slot in range(len(u.names)):
                    present = self._present[slot, lo : i + 1]
                    if not present.any() or u.list_index[slot] > i or u.delist_index[slot] <= i:
                        continue
                    adv = int(self._volume[slot, lo : i + 1][present].mean())
                    si = int(adv * ratio[slot] * float(np.exp(rng.normal(0, 0.15))))
                    out.append(
                        (
                            i,
                            {
                                "settlement_date": self.sessions[i].isoformat(),
                                "ticker": self._listed_name(slot, i),
                                "short_interest": si,
                                "avg_daily_volume": adv,
                                "days_to_cover": round(si / adv, 2) if adv else 0.0,
                            },
                        )
                    )
            return out

        return [rec for i, rec in self._records.get(("short_interest",), build_all) if i <= t_today]

    def short_volume(self) -> list[dict]:
        """Daily off-exchange short volume per traded ticker up to today, split by reporting venue."""
        t_today = self._today_index

        def build_all() -> list[tuple[int, dict]]:
            rng = self._rng(_SEED_SHORT)
            n, t_n = self._present.shape
            total = self._volume
            share = rng.uniform(0.3, 0.6, (n, t_n))
            short = np.floor(total * share).astype(np.int64)
            exempt = np.floor(short * rng.uniform(0.0, 0.03, (n, t_n))).astype(np.int64)
            venue = rng.dirichlet([6.0, 1.0, 1.0, 2.0], (n, t_n))
            parts = np.floor(short[..., None] * venue).astype(np.int64)
            parts[..., 0] += short - parts.sum(axis=-1)
            ex_parts = np.floor(exempt[..., None] * venue).astype(np.int64)
            ex_parts[..., 0] += exempt - ex_parts.sum(axis=-1)
            out = []
            for t in range(t_n):
                slots = np.flatnonzero(self._present[:, t])
                for slot in slots.tolist():
                    tv, sv = int(total[slot, t]), int(short[slot, t])
                    p, e = parts[slot, t].tolist(), ex_parts[slot, t].tolist()
                    out.append(
                        (
                            t,
                            {
                                "ticker": self._listed_name(slot, t),
                                "date": self.sessions[t].isoformat(),
                                "total_volume": tv,
                                "short_volume": sv,
                                "exempt_volume": int(exempt[slot, t]),
                                "non_exempt_volume": sv - int(exempt[slot, t]),
                                "short_volume_ratio": round(100.0 * sv / tv, 2),
                                "adf_short_volume": p[0],
                                "adf_short_volume_exempt": e[0],
                                "nasdaq_carteret_short_volume": p[1],
                                "nasdaq_carteret_short_volume_exempt": e[1],
                                "nasdaq_chicago_short_volume": p[2],
                                "nasdaq_chicago_short_volume_exempt": e[2],
                                "nyse_short_volume": p[3],
                                "nyse_short_volume_exempt": e[3],
                            },
                        )
                    )
            return out

        return [rec for t, rec in self._records.get(("short_volume",), build_all) if t <= t_today]

    # ---------------------------------------------------------- introspection

    def halts(self) -> list[tuple[str, dt.date]]:
        """(ticker, session) pairs on which a listed stock did not trade; tests and docs use this."""
        out = []
        for slot, t in zip(*np.nonzero(self._halts), strict=True):
            out.append((self._listed_name(int(slot), int(t)), self.sessions[int(t)]))
        return sorted(out, key=lambda x: (x[1], x[0]))


def _number(x: float) -> float | int:
    """Whole numbers as ints, like Polygon's JSON (`"split_to": 20`, `"strike_price": 65`)."""
    return int(x) if float(x).is_integer() else float(x)


def _items(*rows: tuple[str, str, float, str, int]) -> dict[str, dict]:
    return {
        key: {
            "label": label,
            "value": float(round(value, 2)) if unit != "USD" else float(round(value)),
            "unit": unit,
            "order": order,
        }
        for key, label, value, unit, order in rows
    }


def _quarter_end(day: dt.date) -> dt.date:
    """The calendar quarter end on or after `day`."""
    month = ((day.month - 1) // 3 + 1) * 3
    nxt = dt.date(day.year + (month == 12), month % 12 + 1, 1)
    return nxt - dt.timedelta(days=1)


def _quarter_start(q_end: dt.date) -> dt.date:
    return dt.date(q_end.year, q_end.month - 2, 1)


def _strike_steps(spots: np.ndarray, per_side: int) -> np.ndarray:
    """Listed-looking strike increments so `per_side` strikes span roughly +-30% of each spot."""
    ladder = np.array([0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0])
    raw = np.maximum(0.6 * spots / max(per_side, 1), 0.01)
    return ladder[np.minimum(np.searchsorted(ladder, raw, side="left"), ladder.size - 1)]


def _black_scholes(
    spot: np.ndarray, strike: np.ndarray, tyears: np.ndarray, vol: np.ndarray, call: np.ndarray
) -> np.ndarray:
    sq = vol * np.sqrt(tyears)
    d1 = (np.log(spot / strike) + (_RATE + 0.5 * vol**2) * tyears) / sq
    d2 = d1 - sq
    disc = strike * np.exp(-_RATE * tyears)
    call_px = spot * _ndtr(d1) - disc * _ndtr(d2)
    put_px = disc * _ndtr(-d2) - spot * _ndtr(-d1)
    return np.where(call, call_px, put_px)


def _holiday_name(day: dt.date) -> str:
    """Name of an NYSE closure or early close, by the rule that places it; ad-hoc closures get a generic name."""
    m, d, wd = day.month, day.day, day.weekday()
    rules = (
        (m == 1 and d <= 2, "New Years Day"),
        (m == 1 and wd == 0 and 15 <= d <= 21, "Martin Luther King, Jr. Day"),
        (m == 2 and wd == 0 and 15 <= d <= 21, "Washingtons Birthday"),
        (m in (3, 4) and wd == 4, "Good Friday"),
        (m == 5 and wd == 0 and d >= 25, "Memorial Day"),
        (m == 6 and 18 <= d <= 20, "Juneteenth"),
        (m == 7 and 3 <= d <= 5, "Independence Day"),
        (m == 9 and wd == 0 and d <= 7, "Labor Day"),
        (m == 11 and 22 <= d <= 29 and wd in (3, 4), "Thanksgiving"),
        (m == 12 and 24 <= d <= 26, "Christmas"),
        (m == 12 and d == 31, "New Years Day"),
    )
    return next((name for hit, name in rules if hit), "Market Holiday")
