"""The flat-file bucket over S3: client, pacing, retries, listings, downloads into landing (its layout in
`loaders.landing`), and the errors that stop a run.

- **Credentials**: only `POLYGON_S3_ACCESS_KEY_ID` / `POLYGON_S3_SECRET_ACCESS_KEY` (environment or
  `.dlt/secrets.toml`). The client comes from a botocore session that reads no AWS profile, config or
  credentials file and is never given an empty key, so boto3's credential chain (`AWS_*` variables,
  `~/.aws`, instance metadata) is never consulted: a user's own AWS key never signs a request to Polygon.
- **Pacing**: botocore's adaptive retry mode supplies a client-side rate limiter (CUBIC, shared by every
  thread using the client) that slows down after throttling answers; on top of it a `Throttle` holds back
  every request of the run until a throttling answer's `Retry-After` has passed (or, without one, for a
  backoff shared by all threads that grows while the throttling goes on).
- **Retries**: tenacity decides (botocore makes one attempt per call), so every fault is counted once:
  5xx, timeouts, resets and short bodies get `DOWNLOAD_ATTEMPTS`; throttling is waited out for up to
  `THROTTLE_PATIENCE_SECONDS` per request; a refused connection or an unknown host gets
  `CONNECT_ATTEMPTS`.
- **Systematic errors** (`StopRun`): missing or rejected credentials, access denied to the first files,
  an unknown bucket, an endpoint that cannot be resolved or reached. Every further request would fail the
  same way, so the run stops at the first evidence, with one message naming the setting to fix and an
  exit code for the kind of error (`EXIT_*`, sysexits values).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tenacity import RetryCallState, Retrying, retry_if_exception

from loaders import landing
from loaders.flatfiles import settings as ff
from loaders.flatfiles.parse import session_from_key
from loaders.pacing import RateLimiter, parse_retry_after

log = logging.getLogger(__name__)
T = TypeVar("T")

# Exit codes of a run stopped by a systematic error (sysexits.h values, so scripts can tell them apart
# from 1 = some sessions failed and 2 = bad usage or the dataset is busy).
EXIT_NO_HOST = 68  # EX_NOHOST: the endpoint's host name does not resolve
EXIT_UNREACHABLE = 69  # EX_UNAVAILABLE: the endpoint refuses or drops connections
EXIT_DENIED = 77  # EX_NOPERM: credentials rejected, or access denied to the first files
EXIT_CONFIG = 78  # EX_CONFIG: a setting is missing or invalid (credentials, endpoint URL, bucket)

CREDENTIAL_SETTINGS = "POLYGON_S3_ACCESS_KEY_ID and POLYGON_S3_SECRET_ACCESS_KEY"
# S3 error codes that say the key pair itself is wrong: nothing signed with it will ever succeed
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired"}
)
# S3 (and AWS) error codes of a throttling answer; a HEAD's 503 has no body, so its code is "503"
THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "503",
        "429",
    }
)


# --------------------------------------------------------------------------------------------------- errors


class MissingFile(Exception):
    """The endpoint answered 403 or 404 for a key: recorded for that date, never retried in the run."""

    def __init__(self, key: str, status: int, code: str) -> None:
        self.key, self.status, self.code = key, status, code
        detail = code if code and code != str(status) else ""
        if status == 403:
            # HEAD answers carry no body, so the S3 error code is often just "403"
            hint = f"access denied: check {CREDENTIAL_SETTINGS} and the plan"
            detail = f"{detail} ({hint})" if detail else hint
        elif status == 404:
            detail = detail or "no such file"
        super().__init__(f"{key}: HTTP {status} {detail}".rstrip())


class TransientDownloadError(Exception):
    """A download that ended early or does not match its ETag; retried."""


class ListingRefused(Exception):
    """The bucket refused a listing (403/404): these credentials may read files but not list them."""


class StopRun(Exception):
    """A systematic error: every further request would fail the same way, so the run stops here.

    `kind` is one of config, credentials, denied, dns, unreachable; `code` the process exit code.
    """

    def __init__(self, kind: str, code: int, message: str) -> None:
        self.kind, self.code, self.message = kind, code, message
        super().__init__(message)


def missing_credentials(access_key_id: str, secret_access_key: str) -> StopRun | None:
    """The StopRun for an incomplete key pair (naming what is missing), or None when both are set."""
    missing = [
        name
        for name, value in (
            ("POLYGON_S3_ACCESS_KEY_ID", access_key_id),
            ("POLYGON_S3_SECRET_ACCESS_KEY", secret_access_key),
        )
        if not value
    ]
    if not missing:
        return None
    return StopRun(
        "config",
        EXIT_CONFIG,
        f"no flat-file credentials: set {' and '.join(missing)} (environment, or "
        f"{' / '.join(m.lower() for m in missing)} in .dlt/secrets.toml). AWS credentials (AWS_* variables, "
        "~/.aws, instance roles) are never used for Polygon.",
    )


def _status_of(exc: BaseException) -> tuple[int | None, str]:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        meta = response.get("ResponseMetadata", {})
        code = str(response.get("Error", {}).get("Code", ""))
        return meta.get("HTTPStatusCode"), code
    return None, ""


def is_throttled(exc: BaseException) -> bool:
    """A throttling answer (503 SlowDown, 429, ...): waited out, never counted as a failed attempt."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    status, code = _status_of(exc)
    return code in THROTTLE_CODES or status in (429, 503)


def is_connect_error(exc: BaseException) -> bool:
    """No connection at all (refused, unknown host, connect timeout): retried briefly, then the run stops."""
    from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

    return isinstance(exc, EndpointConnectionError | ConnectTimeoutError)


def is_transient(exc: BaseException) -> bool:
    """5xx, SlowDown/throttling, timeouts, resets and short bodies are worth another attempt."""
    from botocore.exceptions import (
        ClientError,
        HTTPClientError,
        IncompleteReadError,
        ResponseStreamingError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, TransientDownloadError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, ClientError):
        status, code = _status_of(exc)
        if code in THROTTLE_CODES or code in {"RequestTimeout", "InternalError"}:
            return True
        return status is not None and (status >= 500 or status in (408, 429))
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError | ResponseStreamingError):
        # endpoint connection errors, read/connect timeouts, closed connections, incomplete reads. Other
        # botocore errors (no credentials, invalid parameters, bad endpoint URL) fail the same way every time.
        return True
    name = type(exc).__name__
    return name in {"ProtocolError", "IncompleteRead", "ReadTimeoutError", "ResponseStreamingError"}


def _permanent(exc: BaseException, key: str) -> MissingFile | None:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        status, code = _status_of(exc)
        if code in CREDENTIAL_CODES or code == "NoSuchBucket":
            return None  # systematic, see `systematic`
        if status in (403, 404) or code in {"NoSuchKey", "AccessDenied", "NotFound", "403", "404"}:
            return MissingFile(key, status or 0, code)
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what botocore wrapped in it (`kwargs['error']`) and their causes."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        kwargs = getattr(item, "kwargs", None)
        todo += [item.__cause__, item.__context__, kwargs.get("error") if isinstance(kwargs, dict) else None]
    return seen


def systematic(exc: BaseException, endpoint: str, bucket: str) -> StopRun | None:
    """The StopRun an exception proves (wrong credentials, unknown bucket or host, no connection), or None."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(exc, StopRun):
        return exc
    if isinstance(exc, ClientError):
        status, code = _status_of(exc)
        if code in CREDENTIAL_CODES:
            return StopRun(
                "credentials",
                EXIT_DENIED,
                f"the flat-file endpoint {endpoint} rejected the credentials ({code}): check "
                f"{CREDENTIAL_SETTINGS}",
            )
        if code == "NoSuchBucket":
            return StopRun(
                "config",
                EXIT_CONFIG,
                f"bucket {bucket!r} does not exist at {endpoint}: check POLYGON_S3_BUCKET",
            )
        return None
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return StopRun("config", EXIT_CONFIG, f"no flat-file credentials: set {CREDENTIAL_SETTINGS}")
    if is_connect_error(exc):
        chain = _chain(exc)
        host = urlsplit(endpoint).hostname or endpoint
        if any(isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError" for e in chain):
            return StopRun(
                "dns",
                EXIT_NO_HOST,
                f"cannot resolve {host!r}, the host of POLYGON_S3_ENDPOINT={endpoint}: check the setting "
                "and this machine's DNS",
            )
        if any(isinstance(e, ConnectionRefusedError) for e in chain):
            reason = "connection refused"
        elif any(isinstance(e, TimeoutError) or "timeout" in type(e).__name__.lower() for e in chain):
            reason = "connection timed out"
        else:
            reason = "no connection"
        return StopRun(
            "unreachable",
            EXIT_UNREACHABLE,
            f"cannot connect to POLYGON_S3_ENDPOINT={endpoint} ({reason}): check the setting and that the "
            "endpoint is reachable from here",
        )
    return None


class RunGuard:
    """Watches one run's S3 answers for a systematic error; once one is seen, the run stops.

    Access denied (403) is systematic when the first `denied_limit` files asked for were all denied and
    none could be read: the key pair or the plan does not cover them, and the other files would be denied
    one by one. A 403 after some file was readable is recorded for its date only (a plan may lack a
    single dataset's history).
    """

    def __init__(self, endpoint: str, bucket: str, prefix: str, denied_limit: int = ff.DENIED_LIMIT) -> None:
        self.endpoint, self.bucket, self.prefix = endpoint, bucket, prefix
        self.denied_limit = denied_limit
        self.stopped: StopRun | None = None
        self._lock = threading.Lock()
        self._readable = 0
        self._denied: list[str] = []

    def trip(self, stop: StopRun) -> StopRun:
        with self._lock:
            if self.stopped is None:
                self.stopped = stop
                log.debug("stopping the run: %s", stop.message)
            return self.stopped

    def check(self) -> None:
        if self.stopped is not None:
            raise self.stopped

    def readable(self) -> None:
        with self._lock:
            self._readable += 1

    def failed(self, exc: BaseException, key: str, wanted: int) -> StopRun | None:
        """Record a request that failed for good; returns the StopRun when the failure is systematic."""
        stop = systematic(exc, self.endpoint, self.bucket)
        if stop is not None:
            return self.trip(stop)
        if isinstance(exc, MissingFile) and exc.status == 403:
            with self._lock:
                self._denied.append(key)
                denied, readable = list(self._denied), self._readable
            if not readable and len(denied) >= min(self.denied_limit, wanted):
                names = ", ".join(sorted(denied)[:3]) + (", ..." if len(denied) > 3 else "")
                return self.trip(
                    StopRun(
                        "denied",
                        EXIT_DENIED,
                        f"access denied (HTTP 403) to the first {len(denied)} file(s) ({names}) and no file "
                        f"was readable: check {CREDENTIAL_SETTINGS}, and that your Polygon plan includes "
                        f"{self.prefix} for these dates",
                    )
                )
        return None


# --------------------------------------------------------------------------------------------------- pacing


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds a throttling answer asks to wait: `Retry-After` (seconds or HTTP date), else S3's
    `x-amz-retry-after` (milliseconds); None when the answer names no time."""
    if headers is None:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if value:
        return parse_retry_after(str(value), maximum=ff.MAX_RETRY_AFTER_SECONDS)
    millis = headers.get("x-amz-retry-after")
    if millis:
        try:
            return min(max(int(millis) / 1000.0, 0.0), ff.MAX_RETRY_AFTER_SECONDS)
        except ValueError:
            return None
    return None


class Throttle:
    """One per S3 client: no request of the run is sent before a throttling answer allows.

    Hooked into botocore's events: `before-send` (the last step before a request goes on the wire, after
    botocore's own adaptive rate limiter) waits for the shared gate; `needs-retry` (right after each
    answer arrives) closes the gate for the answer's `Retry-After`, or, without one, for a backoff that
    doubles while requests sent after the previous pause are still throttled and resets on success.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        initial: float = ff.THROTTLE_BACKOFF_INITIAL,
        maximum: float = ff.THROTTLE_BACKOFF_MAX,
    ) -> None:
        self.gate = RateLimiter(None, clock=clock, sleep=sleep)
        self._clock = clock
        self._initial, self._maximum = initial, maximum
        self._lock = threading.Lock()
        self._local = threading.local()
        self._streak = 0
        self._paused_until = float("-inf")
        self.throttled = 0  # throttling answers seen (the run summary reports them)
        self.paused_seconds = 0.0

    def attach(self, client: Any) -> Any:
        events = client.meta.events
        events.register_last("before-send", self._before_send, unique_id="quantmini-throttle-send")
        events.register_last("needs-retry", self._after_response, unique_id="quantmini-throttle-answer")
        return client

    def _before_send(self, **_: Any) -> None:
        self._local.sent_at = self.gate.acquire()
        return None  # a value here would replace the HTTP request

    def _after_response(self, response: Any = None, **_: Any) -> None:
        if not response:
            return None  # no answer at all (connection error): nothing to learn about throttling
        http, parsed = response
        code = ""
        if isinstance(parsed, dict):
            code = str(parsed.get("Error", {}).get("Code", ""))
        status = int(getattr(http, "status_code", 0) or 0)
        if code in THROTTLE_CODES or status in (429, 503):
            self.observe(
                retry_after_seconds(getattr(http, "headers", None)), getattr(self._local, "sent_at", None)
            )
        elif status < 400:
            with self._lock:
                self._streak = 0
        return None  # a value here would make botocore retry on its own

    def observe(self, retry_after: float | None, sent_at: float | None = None) -> float:
        """A throttling answer to a request sent at `sent_at`: close the gate; returns the pause."""
        with self._lock:
            self.throttled += 1
            if retry_after is not None:
                pause = retry_after
            else:
                # a request sent before the last pause ended was in flight during it: no new evidence
                if sent_at is None or sent_at >= self._paused_until:
                    self._streak += 1
                ceiling = min(self._maximum, self._initial * 2 ** max(self._streak - 1, 0))
                pause = ceiling * (0.5 + random.random() / 2)
            self._paused_until = max(self._paused_until, self._clock() + pause)
            self.paused_seconds += pause
        self.gate.pause(pause)
        log.info("throttled by the endpoint; every request waits %.1fs", pause)
        return pause


# --------------------------------------------------------------------------------------------------- client


def make_s3_client(
    endpoint: str,
    access_key_id: str,
    secret_access_key: str,
    max_pool: int,
    *,
    throttle: Throttle | None = None,
) -> Any:
    """A botocore S3 client for Polygon's bucket, signed with the POLYGON_S3_* key pair only.

    Raises StopRun (EXIT_CONFIG) when a key is missing or the endpoint is not an http(s) URL, instead of
    letting boto3 look for AWS credentials elsewhere.
    """
    import botocore.session
    from botocore.config import Config

    stop = missing_credentials(access_key_id, secret_access_key)
    if stop is not None:
        raise stop
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StopRun(
            "config", EXIT_CONFIG, f"POLYGON_S3_ENDPOINT={endpoint!r} is not an http(s) URL with a host"
        )
    # No profile, config file or credentials file: the user's AWS setup must not change how we talk to
    # Polygon (a missing AWS_PROFILE would even fail the client), and no AWS key may be picked up.
    session = botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, os.devnull, None),
            "credentials_file": (None, None, os.devnull, None),
        }
    )
    config = Config(
        connect_timeout=ff.CONNECT_TIMEOUT,
        read_timeout=ff.READ_TIMEOUT,
        # one attempt per call (tenacity retries); adaptive mode adds botocore's client-side rate limiter
        retries={"total_max_attempts": 1, "mode": "adaptive"},
        max_pool_connections=max(10, max_pool * 2),
        signature_version="s3v4",
        s3={"addressing_style": "path"},
    )
    client = session.create_client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=None,
        region_name="us-east-1",
        config=config,
    )
    return (throttle or Throttle()).attach(client)


# --------------------------------------------------------------------------------------------------- calls


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("attempt %d failed (%s: %s); retrying", state.attempt_number, type(exc).__name__, exc)


def call(fn: Callable[[], T], *, attempts: int = ff.DOWNLOAD_ATTEMPTS, guard: RunGuard | None = None) -> T:
    """Run one S3 request with retries: `attempts` for transient faults, `CONNECT_ATTEMPTS` without a
    connection, throttling waited out (the client's Throttle holds the thread) for up to
    `THROTTLE_PATIENCE_SECONDS`; stops retrying at once when the run's guard has stopped the run."""
    if guard is not None:
        guard.check()  # a run already stopped sends nothing more
    counts = {"transient": 0, "connect": 0}
    throttled_since: list[float] = []

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if guard is not None and guard.stopped is not None:
            return True
        if exc is not None and is_throttled(exc):
            if not throttled_since:
                throttled_since.append(time.monotonic())
            return time.monotonic() - throttled_since[0] > ff.THROTTLE_PATIENCE_SECONDS
        if exc is not None and is_connect_error(exc):
            counts["connect"] += 1
            return counts["connect"] >= ff.CONNECT_ATTEMPTS
        counts["transient"] += 1
        return counts["transient"] >= attempts

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if exc is not None and is_throttled(exc):
            return 0.0  # the Throttle already holds every request of the run back
        tries = counts["connect"] if exc is not None and is_connect_error(exc) else counts["transient"]
        return random.uniform(0, min(ff.BACKOFF_MAX, ff.BACKOFF_INITIAL * 2**tries))  # full jitter

    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop,
        wait=wait,
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(fn)


@dataclass(frozen=True)
class RemoteFile:
    key: str
    session: dt.date
    etag: str
    size: int


def head(
    client: Any, bucket: str, key: str, attempts: int = ff.DOWNLOAD_ATTEMPTS, guard: RunGuard | None = None
) -> RemoteFile:
    """ETag and size of one key; 403/404 raise MissingFile at once."""

    def _head() -> RemoteFile:
        try:
            response = client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            missing = _permanent(exc, key)
            if missing:
                raise missing from None
            raise
        return RemoteFile(
            key, session_from_key(key), response["ETag"].strip('"'), int(response["ContentLength"])
        )

    return call(_head, attempts=attempts, guard=guard)


def _pages(
    client: Any, bucket: str, prefix: str, delimiter: str | None, guard: RunGuard | None
) -> list[dict[str, Any]]:
    """Every page of a ListObjectsV2 of `prefix`; ListingRefused on 403/404 (not on NoSuchBucket)."""
    pages: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        if token:
            args["ContinuationToken"] = token
        try:
            page = call(lambda a=args: dict(client.list_objects_v2(**a)), guard=guard)
        except Exception as exc:
            if _permanent(exc, prefix):
                raise ListingRefused(str(exc)) from None
            raise
        pages.append(page)
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        if not token:
            return pages


def list_prefix(
    client: Any, bucket: str, prefix: str, guard: RunGuard | None = None
) -> dict[str, RemoteFile] | None:
    """ETag and size of every dated key under `prefix` (one request per 1,000 keys instead of a HEAD each).

    None when the listing itself is refused (403/404: some credentials may read files but not list them);
    the caller then asks for each key on its own.
    """
    try:
        pages = _pages(client, bucket, prefix, None, guard)
    except ListingRefused:
        return None
    out: dict[str, RemoteFile] = {}
    for page in pages:
        for entry in page.get("Contents", []):
            key = str(entry["Key"])
            if ff.KEY_DATE.search(key):
                out[key] = RemoteFile(
                    key, session_from_key(key), str(entry["ETag"]).strip('"'), int(entry["Size"])
                )
    return out


class Listings:
    """Listings of one run, each folder asked for once (the published-range probe and the month listings
    of the wanted keys share them)."""

    def __init__(self, client: Any, bucket: str, guard: RunGuard | None = None) -> None:
        self.client, self.bucket, self.guard = client, bucket, guard
        self._files: dict[str, dict[str, RemoteFile] | None] = {}
        self._folders: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def has(self, prefix: str) -> bool:
        """Whether `prefix` was already listed in this run (asking again costs nothing)."""
        with self._lock:
            return prefix in self._files

    def files(self, prefix: str) -> dict[str, RemoteFile] | None:
        """Dated keys under `prefix` (None when the listing is refused)."""
        with self._lock:
            if prefix in self._files:
                return self._files[prefix]
        found = list_prefix(self.client, self.bucket, prefix, guard=self.guard)
        with self._lock:
            self._files[prefix] = found
        return found

    def folders(self, prefix: str) -> list[str]:
        """Sub-folders of `prefix`, sorted; ListingRefused when the bucket refuses to list."""
        with self._lock:
            if prefix in self._folders:
                return self._folders[prefix]
        pages = _pages(self.client, self.bucket, prefix, "/", self.guard)
        found = sorted(str(cp["Prefix"]) for page in pages for cp in page.get("CommonPrefixes", []))
        with self._lock:
            self._folders[prefix] = found
        return found


def published_range(listings: Listings, prefix: str) -> tuple[dt.date, dt.date] | None:
    """First and newest session published under a dataset prefix (`<prefix>/YYYY/MM/<date>.csv.gz`), from a
    few delimiter listings (years, the first and last year's months, those months' files), not a full scan.

    None when nothing is published there; ListingRefused when the bucket does not allow listing.
    """
    years = listings.folders(prefix.rstrip("/") + "/")
    if not years:
        return None

    def edge(ordered_years: list[str], newest: bool) -> dt.date | None:
        for year in ordered_years:
            months = listings.folders(year)
            for month in reversed(months) if newest else months:
                found = listings.files(month)
                if found is None:
                    raise ListingRefused(month)
                if found:
                    days = sorted(remote.session for remote in found.values())
                    return days[-1] if newest else days[0]
        return None

    first = edge(years, newest=False)
    last = edge(list(reversed(years)), newest=True)
    if first is None or last is None:
        return None
    return first, last


# --------------------------------------------------------------------------------------------------- download


def download(
    client: Any,
    bucket: str,
    remote: RemoteFile,
    landing_root: Path,
    *,
    force: bool = False,
    attempts: int = ff.DOWNLOAD_ATTEMPTS,
    guard: RunGuard | None = None,
) -> tuple[Path, str, bool]:
    """Fetch `remote` into landing unless an identical copy is there. Returns (path, etag, downloaded)."""
    target = landing.flatfile_path(landing_root, remote.key)
    if not force and landing.landed_etag(landing_root, remote.key, remote.size) == remote.etag:
        return target, remote.etag, False

    def _get() -> str:
        try:
            response = client.get_object(Bucket=bucket, Key=remote.key)
        except Exception as exc:
            missing = _permanent(exc, remote.key)
            if missing:
                raise missing from None
            raise
        etag = response["ETag"].strip('"')
        expected = int(response["ContentLength"])
        check_md5 = len(etag) == 32 and "-" not in etag
        digest = hashlib.md5(usedforsecurity=False) if check_md5 else None
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        received = 0
        try:
            body = response["Body"]
            with open(tmp, "wb") as out:
                while chunk := body.read(ff.DOWNLOAD_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    if digest is not None:
                        digest.update(chunk)
            if received != expected:
                raise TransientDownloadError(f"{remote.key}: body ended at {received} of {expected} bytes")
            if digest is not None and digest.hexdigest() != etag:
                raise TransientDownloadError(f"{remote.key}: content does not match its ETag")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        landing.record_landed(landing_root, remote.key, etag, expected)
        return etag

    return target, call(_get, attempts=attempts, guard=guard), True
