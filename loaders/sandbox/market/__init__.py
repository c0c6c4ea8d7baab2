"""Deterministic synthetic market in Polygon's shapes: the single source every sandbox endpoint serves.

The daily price path of every ticker is generated once for all sessions (cheap: tickers x sessions);
everything per day (minute bars, option chains) is generated on demand from a seed derived from
(seed, dataset, day), so one large day never needs any other day's intraday data. All heavy work is
vectorised with numpy/pyarrow; results are memoised per day so repeated requests are cheap.

One module per subject (`prices`, `options`, `reference`, `news`, `financials`, `short_data`), each a
mixin of `Market`; `common` holds the config, seeds and helpers they share. `Market` and `MarketConfig` are
the API.
"""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np

from loaders import calendar
from loaders.sandbox.market.common import (
    MarketConfig,
    _Memo,
)
from loaders.sandbox.market.financials import Financials
from loaders.sandbox.market.news import News
from loaders.sandbox.market.options import Options
from loaders.sandbox.market.prices import Prices
from loaders.sandbox.market.reference import ReferenceData
from loaders.sandbox.market.short_data import ShortData

__all__ = ["Market", "MarketConfig"]


class Market(ReferenceData, Prices, Options, News, Financials, ShortData):
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

    def halts(self) -> list[tuple[str, dt.date]]:
        """(ticker, session) pairs on which a listed stock did not trade; tests and docs use this."""
        out = []
        for slot, t in zip(*np.nonzero(self._halts), strict=True):
            out.append((self._listed_name(int(slot), int(t)), self.sessions[int(t)]))
        return sorted(out, key=lambda x: (x[1], x[0]))
