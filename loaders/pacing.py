"""Request pacing shared by the REST client and the flat-file S3 client.

One `RateLimiter` paces every thread of a run: requests start at most `rate` per second, and a
throttling answer's `Retry-After` (`pause`) holds back every later request of the run, not only the
thread that received it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time
from collections.abc import Callable

# Request spacing is 1/rate stretched by this factor (2%): clocks of client and server differ slightly.
PACING_MARGIN = 1.02
# A Retry-After longer than this is capped (a misconfigured server must not stall a run for hours).
MAX_RETRY_AFTER_SECONDS = 120.0


class RateLimiter:
    """Spaces request starts at least 1/rate seconds apart across all threads of a run.

    Polygon limits requests per minute per key, so an even spacing (no bursts) is the safe reading of any
    plan's limit. `pause(seconds)` pushes every later request back, which is how a 429's `Retry-After`
    applies to the whole run and not just the thread that received it. The clock and sleep are injectable
    so tests can prove the pacing without waiting. `margin` stretches the spacing a little so a server
    counting on its own clock never sees two requests closer than its limit allows.
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = PACING_MARGIN,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"--rate-limit must be a positive number of requests per second, got {rate}")
        self.interval = 0.0 if rate is None else margin / rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_at = float("-inf")
        self.granted: list[float] = []  # start time of every request (tests and the run summary read it)

    def acquire(self) -> float:
        """Block until the next request may start; return that start time."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next_at)
            self._next_at = start + self.interval
            self.granted.append(start)
        if start > now:
            self._sleep(start - now)
        return start

    def pause(self, seconds: float) -> None:
        """Let no request start for `seconds` from now (a 429's Retry-After)."""
        with self._lock:
            self._next_at = max(self._next_at, self._clock() + seconds)


def parse_retry_after(
    value: str | None, *, now: dt.datetime | None = None, maximum: float = MAX_RETRY_AFTER_SECONDS
) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); 1 s when absent or bad."""
    if not value:
        return 1.0
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 1.0
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return min(max(seconds, 0.0), maximum)
