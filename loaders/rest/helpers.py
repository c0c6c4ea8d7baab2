"""HTTP client for Polygon's REST API and the landing store of raw pages.

Why hand-written rather than dlt's `rest_api`: a single limiter must pace every thread of a run (Polygon
counts requests per key), a 429 must pause all of them for `Retry-After`, and each page must be written
to landing before it is parsed so a killed listing resumes from disk instead of starting over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
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


def listing_id(path: str, params: Mapping[str, Any]) -> str:
    """Stable name of a listing request: the same path and parameters give the same folder in landing."""
    canonical = json.dumps([path, sorted((str(k), str(v)) for k, v in params.items())])
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file and rename, so a partial file never looks complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


COMPLETE_MARKER = "_COMPLETE"
STALE_MARKER = "_STALE"  # an interrupted fetch whose saved cursor the server no longer accepts
STALE_CURSOR_STATUSES = frozenset({400, 404, 410})


def _next_url(data: Any) -> str | None:
    """The page's `next_url` when it carries a cursor; Polygon sometimes sends a bare `...?` at the end."""
    url = data.get("next_url") if isinstance(data, dict) else None
    if not url or not urlsplit(str(url)).query:
        return None
    return str(url)


@dataclass
class Page:
    """One page of a listing: the decoded JSON, where it was landed, and whether it came from disk."""

    data: Any
    path: Path
    number: int
    resumed: bool


class Landing:
    """Raw pages of one listing under `landing/rest/<dataset>/<listing id>/<fetch started UTC>/`.

    Every fetched page is written (atomically) before it is parsed. A fetch folder without the
    `_COMPLETE` marker is an interrupted listing: the next run with the same request replays its pages
    from disk and continues from the last page's `next_url`, so a killed run neither re-downloads nor
    skips anything. A completed listing is never replayed: the next run fetches fresh pages. Should the
    server reject the saved cursor (expired), the fetch is marked `_STALE` and the listing starts over.
    """

    def __init__(self, root: Path, dataset: str, path: str, params: Mapping[str, Any], secret: str) -> None:
        self.listing = listing_id(path, params)
        self.folder = root / "rest" / dataset / self.listing
        self._secret = secret
        self._request = {"path": path, "params": {str(k): str(v) for k, v in params.items()}}

    def _unfinished(self) -> Path | None:
        if not self.folder.exists():
            return None
        fetches = sorted(p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if fetches and not any((fetches[-1] / marker).exists() for marker in (COMPLETE_MARKER, STALE_MARKER)):
            return fetches[-1]
        return None

    def _new_fetch(self) -> Path:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        fetch = self.folder / stamp
        fetch.mkdir(parents=True, exist_ok=True)
        atomic_write(self.folder / "request.json", json.dumps(self._request, indent=1).encode())
        return fetch

    def pages(self, client: PolygonClient, path: str, params: Mapping[str, Any]) -> Iterator[Page]:
        """Pages of the listing, replaying an interrupted fetch from disk first."""
        fetch = self._unfinished()
        if fetch is None:
            yield from self._fetch(client, self._new_fetch(), 0, path, params)
            return
        number = 0
        next_url: str | None = path
        next_params: Mapping[str, Any] | None = params
        saved = sorted(fetch.glob("page-*.json"))
        for file in saved:
            number += 1
            try:
                data = json.loads(file.read_bytes())
            except ValueError as exc:
                raise RestError(f"landed page {file} is not valid JSON: {exc}") from None
            yield Page(data=data, path=file, number=number, resumed=True)
            next_url = _next_url(data)
            next_params = None
        if saved and not next_url:
            atomic_write(fetch / COMPLETE_MARKER, b"")
            return
        log.info("resuming listing %s after %d landed pages", self.listing, len(saved))
        try:
            yield from self._fetch(client, fetch, number, next_url, next_params)
        except RestError as exc:
            if (
                not saved
                or exc.status not in STALE_CURSOR_STATUSES
                or fetch.joinpath(COMPLETE_MARKER).exists()
            ):
                raise
            # The server no longer accepts the saved cursor: start the listing over (rows already
            # yielded come again and are merged by key, so nothing is duplicated).
            log.warning(
                "saved cursor of listing %s rejected (HTTP %s); fetching it again", self.listing, exc.status
            )
            atomic_write(fetch / STALE_MARKER, b"")
            yield from self._fetch(client, self._new_fetch(), 0, path, params)

    def _fetch(
        self,
        client: PolygonClient,
        fetch: Path,
        number: int,
        next_url: str | None,
        next_params: Mapping[str, Any] | None,
    ) -> Iterator[Page]:
        """Request pages from `next_url` on, landing each before yielding it; mark the fetch complete."""
        seen: set[str] = set()
        while next_url:
            relative = client.relative(next_url)
            if next_params is None and ("?" not in relative or relative in seen):
                break  # a next_url without a cursor (or one already followed) ends the listing
            seen.add(relative)
            response = client.get(relative, next_params)
            number += 1
            file = fetch / f"page-{number:06d}.json"
            body = response.body
            if self._secret and self._secret.encode() in body:
                body = body.replace(self._secret.encode(), b"***")
            atomic_write(file, body)
            yield Page(data=response.data, path=file, number=number, resumed=False)
            next_url = _next_url(response.data)
            next_params = None
        atomic_write(fetch / COMPLETE_MARKER, b"")
