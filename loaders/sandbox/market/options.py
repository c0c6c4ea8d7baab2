"""Options: listed chains per underlying, day and minute bars priced with Black-Scholes, and the contracts reference."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loaders import calendar
from loaders.sandbox.market.common import (
    _ADJUSTED_ROOT,
    _NS,
    _OPTION_ROOT,
    _RATE,
    _SEED_OPTION_DAY,
    _SEED_OPTION_MINUTE,
    _SPECIALS,
    _agg_table,
    _intraday,
    _ndtr,
    _number,
    _ny_midnight_ns,
    _round_grid,
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


class Options:
    """Options of `Market` (a mixin: the state it reads is set up by `Market.__init__`)."""

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
