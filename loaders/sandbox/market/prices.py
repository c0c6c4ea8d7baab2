"""Stock prices: the daily path of every ticker (with splits, dividends and halts) and minute bars that aggregate to it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from loaders import calendar
from loaders.sandbox.market.common import (
    _NS,
    _SEED_DAILY,
    _SEED_STOCK_MINUTE,
    _SPECIALS,
    _agg_table,
    _ar1,
    _intraday,
    _ny_midnight_ns,
    _round_grid,
)


class Prices:
    """Stock prices of `Market` (a mixin: the state it reads is set up by `Market.__init__`)."""

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
