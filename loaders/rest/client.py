"""HTTP client for Polygon's REST API (its pages are landed by `loaders.landing.PageStore`).

Why hand-written rather than dlt's `rest_api`: a single limiter must pace every thread of a run (Polygon
counts requests per key), a 429 must pause all of them for `Retry-After`, and each page must be written
to landing before it is parsed so a killed listing resumes from disk instead of starting over.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from loaders.pacing import RateLimiter, parse_retry_after
from loaders.rest import settings

log = logging.getLogger(__name__)


class RestError(RuntimeError):
    """A request that cannot succeed by retrying (bad key, bad parameters, retries exhausted)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(RuntimeError):
    """A failure worth retrying: 5xx, timeout, connection reset, truncated body."""


class RateLimited(TransientError):
    """HTTP 429: wait `retry_after` seconds, then try again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _error_message(response: httpx.Response) -> str:
    """Polygon's own explanation from an error body (`error` or `message`), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or body.get("status") or "")[:200]
    return str(body)[:200]


@dataclass
class Response:
    """A successful page: the bytes as served (for landing) and the decoded JSON."""

    url: str  # path and query relative to the base URL, never holding the key
    body: bytes
    data: Any


class PolygonClient:
    """Paced, retrying GETs against a Polygon-compatible base URL with Bearer authentication.

    The key travels only in the Authorization header; `next_url`s are followed by path and query against
    our own base URL, so the key is never sent to another host and never appears in a URL we log or land.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        limiter: RateLimiter,
        max_concurrent: int = 4,
        timeout: float = settings.TIMEOUT_SECONDS,
        max_attempts: int = settings.MAX_ATTEMPTS,
        transport: httpx.BaseTransport | None = None,
        redact: Callable[[str], str] | None = None,
        backoff_sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise RestError("no REST API key: set POLYGON_API_KEY (or MASSIVE_API_KEY)")
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.max_attempts = max_attempts
        self._key = api_key
        self._redact = redact or (lambda text: text.replace(api_key, "***"))
        self._backoff_sleep = backoff_sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrent, max_keepalive_connections=max_concurrent),
            follow_redirects=False,
        )
        self._stats_lock = threading.Lock()
        self.requests = 0
        self.retries = 0
        self.rate_limited = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PolygonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def relative(self, url: str) -> str:
        """Path and query of an absolute `next_url` (or a path), to be requested against our base URL."""
        parts = urlsplit(url)
        if not parts.scheme:
            return url
        base_path = urlsplit(self.base_url).path.rstrip("/")
        path = parts.path
        if base_path and path.startswith(base_path + "/"):
            path = path[len(base_path) :]
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() != "apikey"]
        if not query:
            return path
        return str(httpx.URL(path, params=query))

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> Response:
        """GET with pacing, retries (5xx, timeouts, resets, truncated bodies) and 429 handling."""
        counts = {"transient": 0, "limited": 0}

        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, RateLimited):
                counts["limited"] += 1
                return counts["limited"] >= settings.MAX_RATE_LIMITED_WAITS
            counts["transient"] += 1
            return counts["transient"] >= self.max_attempts

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            with self._stats_lock:
                self.retries += 1
            if isinstance(exc, RateLimited):
                return 0.0  # the limiter already holds every thread back for Retry-After
            ceiling = min(
                settings.BACKOFF_MAX_SECONDS, settings.BACKOFF_INITIAL_SECONDS * 2 ** counts["transient"]
            )
            return random.uniform(0, ceiling)  # full jitter

        retrying = Retrying(
            stop=stop,
            wait=wait,
            sleep=self._backoff_sleep,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "retrying %s: %s", self._redact(url), self._redact(str(state.outcome.exception()))
            ),
        )
        try:
            return retrying(self._get_once, url, params)
        except TransientError as exc:
            raise RestError(
                f"GET {self._redact(url)} failed after retries: {self._redact(str(exc))}"
            ) from None

    def _get_once(self, url: str, params: Mapping[str, Any] | None) -> Response:
        self.limiter.acquire()
        with self._stats_lock:
            self.requests += 1
        shown = self._redact(url)
        try:
            response = self._http.get(url, params=dict(params) if params else None)
            body = response.content
        except httpx.TimeoutException as exc:
            raise TransientError(f"timeout on {shown}: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise TransientError(f"connection error on {shown}: {self._redact(str(exc))}") from None
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), maximum=settings.MAX_RETRY_AFTER_SECONDS
            )
            with self._stats_lock:
                self.rate_limited += 1
            self.limiter.pause(retry_after)
            raise RateLimited(f"429 on {shown}, retry after {retry_after:.1f}s", retry_after)
        if status >= 500:
            raise TransientError(f"HTTP {status} on {shown}")
        if status >= 400:
            raise RestError(f"HTTP {status} on {shown}: {self._redact(_error_message(response))}", status)
        try:
            data = json.loads(body)
        except ValueError:
            raise TransientError(f"truncated or invalid JSON body ({len(body)} bytes) on {shown}") from None
        relative = self.relative(str(response.request.url))
        return Response(url=relative, body=body, data=data)
