"""Reference data: the ticker universe (listings, renames, delistings), splits, dividends, ticker events and market holidays."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loaders import calendar
from loaders.sandbox.market.common import (
    _RENAMED_FROM,
    _SEED_UNIVERSE,
    _SPECIALS,
    _event_id,
    _number,
    _utc_iso,
)

_NAME_SUFFIXES = (
    "Holdings Inc.",
    "Corp.",
    "Group Inc.",
    "Technologies Inc.",
    "Industries Co.",
    "Partners LP",
)


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


class ReferenceData:
    """Reference data of `Market` (a mixin: the state it reads is set up by `Market.__init__`)."""

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
