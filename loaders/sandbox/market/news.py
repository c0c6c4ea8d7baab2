"""News articles with tickers, publishers and per-ticker sentiment insights."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import numpy as np

from loaders import calendar
from loaders.sandbox.market.common import (
    _SEED_NEWS,
    _utc_iso,
)

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


class News:
    """News articles with tickers, publishers and per-ticker sentiment insights. of `Market` (a mixin: the state it reads is set up by `Market.__init__`)."""

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
