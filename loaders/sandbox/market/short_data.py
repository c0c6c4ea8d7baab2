"""Short interest (twice a month) and daily short volume."""

from __future__ import annotations

import datetime as dt

import numpy as np

from loaders.sandbox.market.common import (
    _SEED_SHORT,
)


class ShortData:
    """Short interest (twice a month) and daily short volume. of `Market` (a mixin: the state it reads is set up by `Market.__init__`)."""

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
