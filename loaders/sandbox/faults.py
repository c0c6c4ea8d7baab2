"""Fault knobs shared by the sandbox's S3 endpoint and REST app.

One mutable object, changed live by tests (`faults.error_rate = 1.0`) or through the REST admin endpoint
(`POST /_sandbox/faults`). Random draws come from one seeded `random.Random`, so a run with the same seed
and the same request sequence fails the same way.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

ERROR_STATUSES = (500, 502, 503)
_FIELDS = ("error_rate", "latency", "truncate_rate", "rate_limit", "missing_days", "republished", "denied")


def _as_date(value: Any, what: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"{what}: expected a YYYY-MM-DD date, got {value!r}")


def _as_rate(value: Any, name: str) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name}: expected a number between 0 and 1, got {value!r}")
    return rate


@dataclass
class Faults:
    """What the sandbox does wrong, and the RNG that decides when.

    error_rate: fraction of requests answered 500/502/503 (S3: `InternalError`/`BadGateway`/`SlowDown`).
    latency: seconds added before every answer.
    truncate_rate: fraction of successful bodies cut short (connection closed mid-body).
    rate_limit: requests per second before answering 429 with Retry-After (None = unlimited).
    missing_days: sessions whose flat files are absent (404 NoSuchKey, not listed).
    republished: (dataset, session) pairs whose flat file is served corrected: new bytes, new ETag.
    denied: S3 key prefixes whose files answer 403 AccessDenied to GET/HEAD while listings still show
        them (a plan without that dataset or those years).
    """

    error_rate: float = 0.0
    latency: float = 0.0
    truncate_rate: float = 0.0
    rate_limit: float | None = None
    missing_days: set[dt.date] = field(default_factory=set)
    republished: set[tuple[str, dt.date]] = field(default_factory=set)
    denied: tuple[str, ...] = ()
    seed: int = 0
    rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self.rng = random.Random(self.seed)
        self._tokens = 0.0
        self._bucket_rate: float | None = None
        self._stamp = time.monotonic()
        self.update(**{name: getattr(self, name) for name in _FIELDS})

    # -- construction and admin ------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Faults:
        """Faults from JSON-like data (dates as strings, republished as [dataset, date] pairs)."""
        unknown = sorted(set(data) - set(_FIELDS) - {"seed"})
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
        faults = cls(seed=int(data.get("seed", 0)))
        faults.update(**{k: v for k, v in data.items() if k != "seed"})
        return faults

    def update(self, **changes: Any) -> None:
        """Validate and apply changes atomically; ValueError naming the field on bad input."""
        unknown = sorted(set(changes) - set(_FIELDS))
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(unknown)}; known: {', '.join(_FIELDS)}")
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            if name in ("error_rate", "truncate_rate"):
                clean[name] = _as_rate(value, name)
            elif name == "latency":
                try:
                    clean[name] = float(value)
                except (TypeError, ValueError):
                    raise ValueError(f"latency: expected seconds as a number, got {value!r}") from None
                if clean[name] < 0 or math.isnan(clean[name]):
                    raise ValueError(f"latency: expected seconds >= 0, got {value!r}")
            elif name == "rate_limit":
                if value in (None, 0, 0.0, ""):
                    clean[name] = None
                else:
                    try:
                        clean[name] = float(value)
                    except (TypeError, ValueError):
                        raise ValueError(f"rate_limit: expected requests per second, got {value!r}") from None
                    if clean[name] < 0:
                        raise ValueError(f"rate_limit: expected requests per second >= 0, got {value!r}")
            elif name == "missing_days":
                clean[name] = {_as_date(v, "missing_days") for v in (value or ())}
            elif name == "republished":
                pairs = set()
                for item in value or ():
                    if not isinstance(item, (list, tuple)) or len(item) != 2:
                        raise ValueError(f"republished: expected [dataset, YYYY-MM-DD] pairs, got {item!r}")
                    pairs.add((str(item[0]), _as_date(item[1], "republished")))
                clean[name] = pairs
            elif name == "denied":
                if isinstance(value, str) or not all(isinstance(v, str) and v for v in value or ()):
                    raise ValueError(f"denied: expected a list of S3 key prefixes, got {value!r}")
                clean[name] = tuple(value or ())
        with self._lock:
            for name, value in clean.items():
                object.__setattr__(self, name, value)

    def reset(self) -> None:
        """Back to a well-behaved server (and a fresh RNG from the seed)."""
        with self._lock:
            self.update(
                error_rate=0.0,
                latency=0.0,
                truncate_rate=0.0,
                rate_limit=None,
                missing_days=(),
                republished=(),
                denied=(),
            )
            self.rng.seed(self.seed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able view for the admin endpoint."""
        with self._lock:
            return {
                "error_rate": self.error_rate,
                "latency": self.latency,
                "truncate_rate": self.truncate_rate,
                "rate_limit": self.rate_limit,
                "missing_days": sorted(d.isoformat() for d in self.missing_days),
                "republished": sorted([ds, d.isoformat()] for ds, d in self.republished),
                "denied": list(self.denied),
            }

    # -- draws ----------------------------------------------------------------------------------------------

    def draw_error(self) -> int | None:
        """An HTTP status to fail this request with, or None (draws only when the knob is on)."""
        rate = self.error_rate
        if rate <= 0:
            return None
        with self._lock:
            draw = self.rng.random()
        if draw >= rate:
            return None
        return ERROR_STATUSES[int(draw / rate * len(ERROR_STATUSES)) % len(ERROR_STATUSES)]

    def draw_truncation(self) -> float | None:
        """Fraction of the body to send before cutting the connection, or None to send it all."""
        rate = self.truncate_rate
        if rate <= 0:
            return None
        with self._lock:
            draw = self.rng.random()
        return draw / rate if draw < rate else None

    def take_token(self) -> float | None:
        """Rate limit: None if this request may proceed, else seconds to wait (for Retry-After)."""
        rate = self.rate_limit
        with self._lock:
            now = time.monotonic()
            if not rate or rate <= 0:
                self._bucket_rate = None
                return None
            capacity = max(1.0, rate)
            if rate != self._bucket_rate:
                self._bucket_rate, self._tokens, self._stamp = rate, capacity, now
            self._tokens = min(capacity, self._tokens + (now - self._stamp) * rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return None
            return (1.0 - self._tokens) / rate

    def is_missing(self, day: dt.date) -> bool:
        with self._lock:
            return day in self.missing_days

    def is_republished(self, dataset: str, day: dt.date) -> bool:
        with self._lock:
            return (dataset, day) in self.republished

    def is_denied(self, key: str) -> bool:
        with self._lock:
            return any(key.startswith(prefix) for prefix in self.denied)
