"""Polygon's flat-file S3 endpoint: moto's S3 server behind a WSGI layer that adds auth, laziness and faults.

moto answers the S3 protocol (ListObjectsV2/V1, HeadObject, GetObject with Range, ETags, XML errors);
this layer in front of it:

- verifies AWS Signature V4 for real (header or presigned query) against the one configured key pair and
  answers S3's `InvalidAccessKeyId` / `SignatureDoesNotMatch` / `AccessDenied` 403s otherwise;
- materialises objects on demand: a GET/HEAD renders that session's file, a LIST renders the keys under
  its prefix; only sessions up to the market clock exist, missing days are absent, republished files are
  re-put with corrected bytes (so their ETag changes);
- applies the shared `Faults`: rate limit (503 SlowDown + Retry-After), latency, 500/502/503 errors,
  files denied (403 AccessDenied) under given key prefixes, and object bodies cut short or connections
  reset.

Each endpoint keeps its bucket in its own moto account, so several sandboxes can run in one process.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import math
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from loaders import calendar
from loaders.sandbox import flatfiles
from loaders.sandbox.faults import Faults
from loaders.sandbox.market import Market

BUCKET = "flatfiles"
REGION = "us-east-1"
log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_ERROR_TEXT = {
    "AccessDenied": (403, "Access Denied"),
    "InvalidAccessKeyId": (403, "The AWS Access Key Id you provided does not exist in our records."),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "ExpiredToken": (403, "Request has expired"),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "BadGateway": (502, "Bad Gateway"),
    "SlowDown": (503, "Please reduce your request rate."),
}
_FAULT_CODES = {500: "InternalError", 502: "BadGateway", 503: "SlowDown"}


class S3Error(Exception):
    """An S3 error answer (code names the XML `<Code>`)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        self.status, default = _ERROR_TEXT[code]
        self.message = message or default
        super().__init__(f"{code}: {self.message}")


def error_response(
    environ: dict[str, Any],
    start_response: StartResponse,
    error: S3Error,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """S3's XML error body (no body for HEAD, like S3)."""
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{error.code}</Code><Message>{error.message}</Message>"
        f"<RequestId>{request_id}</RequestId></Error>"
    ).encode()
    reason = {403: "Forbidden", 405: "Method Not Allowed", 500: "Internal Server Error", 502: "Bad Gateway"}
    status = f"{error.status} {reason.get(error.status, 'Service Unavailable')}"
    out = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id), *(headers or [])]
    if environ.get("REQUEST_METHOD") == "HEAD":
        start_response(status, [*out, ("Content-Length", "0")])
        return []
    start_response(status, [*out, ("Content-Length", str(len(body)))])
    return [body]


# --------------------------------------------------------------------------------------- signatures


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _header(environ: dict[str, Any], name: str) -> str | None:
    if name == "content-type":
        return environ.get("CONTENT_TYPE")
    if name == "content-length":
        return environ.get("CONTENT_LENGTH")
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def _canonical_query(query: str, drop: str | None = None) -> str:
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != drop]
    encoded = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def _raw_path(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw.split("?", 1)[0] or "/"
    return quote(environ.get("PATH_INFO", "/"), safe="/~")


class SigV4Verifier:
    """Checks AWS Signature Version 4 (Authorization header or presigned URL) for one key pair.

    The payload hash is taken from `x-amz-content-sha256` as signed (the bucket is read-only, so request
    bodies carry nothing). Secrets never appear in the errors it raises.
    """

    def __init__(self, access_key_id: str, secret_access_key: str) -> None:
        self._key_id = access_key_id
        self._secret = secret_access_key

    def verify(self, environ: dict[str, Any]) -> None:
        auth = environ.get("HTTP_AUTHORIZATION", "")
        query = environ.get("QUERY_STRING", "")
        params = dict(parse_qsl(query, keep_blank_values=True))
        if auth.startswith("AWS4-HMAC-SHA256 "):
            fields = {}
            for part in auth[len("AWS4-HMAC-SHA256 ") :].split(","):
                name, _, value = part.strip().partition("=")
                fields[name] = value
            credential = fields.get("Credential", "")
            signed_headers = fields.get("SignedHeaders", "")
            signature = fields.get("Signature", "")
            amz_date = _header(environ, "x-amz-date") or ""
            payload = _header(environ, "x-amz-content-sha256") or _EMPTY_SHA256
            canonical_query = _canonical_query(query)
        elif params.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256":
            credential = params.get("X-Amz-Credential", "")
            signed_headers = params.get("X-Amz-SignedHeaders", "")
            signature = params.get("X-Amz-Signature", "")
            amz_date = params.get("X-Amz-Date", "")
            payload = "UNSIGNED-PAYLOAD"
            canonical_query = _canonical_query(query, drop="X-Amz-Signature")
            try:
                issued = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
                expires = int(params.get("X-Amz-Expires", "0"))
            except ValueError:
                raise S3Error("AccessDenied", "Malformed presigned URL: X-Amz-Date / X-Amz-Expires") from None
            if dt.datetime.now(dt.UTC) > issued + dt.timedelta(seconds=expires):
                raise S3Error("AccessDenied", "Request has expired")
        elif auth.startswith("AWS ") or "AWSAccessKeyId" in params:
            self._verify_v2(environ, auth, params)
            return
        else:
            raise S3Error("AccessDenied", "Access Denied: the request is not signed")
        key_id, _, scope = credential.partition("/")
        if not hmac.compare_digest(key_id.encode(), self._key_id.encode()):
            raise S3Error("InvalidAccessKeyId")
        parts = scope.split("/")
        if len(parts) != 4 or parts[3] != "aws4_request" or not signed_headers or not amz_date:
            raise S3Error("AccessDenied", "Malformed AWS Signature Version 4 credential scope")
        names = signed_headers.split(";")
        canonical_headers = "".join(f"{n}:{' '.join((_header(environ, n) or '').split())}\n" for n in names)
        canonical_request = "\n".join(
            [
                environ["REQUEST_METHOD"],
                _raw_path(environ),
                canonical_query,
                canonical_headers,
                signed_headers,
                payload,
            ]
        )
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
        )
        key = ("AWS4" + self._secret).encode()
        for piece in parts:
            key = _hmac(key, piece)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise S3Error("SignatureDoesNotMatch")

    def _verify_v2(self, environ: dict[str, Any], auth: str, params: dict[str, str]) -> None:
        """Legacy Signature Version 2 (boto3's default for presigned GET URLs)."""
        if auth.startswith("AWS "):
            key_id, _, signature = auth[4:].partition(":")
            date = "" if _header(environ, "x-amz-date") else (_header(environ, "date") or "")
        else:
            key_id, signature = params.get("AWSAccessKeyId", ""), params.get("Signature", "")
            date = params.get("Expires", "")
            try:
                expired = int(date) < time.time()
            except ValueError:
                raise S3Error("AccessDenied", "Malformed presigned URL: Expires") from None
            if expired:
                raise S3Error("AccessDenied", "Request has expired")
        if not hmac.compare_digest(key_id.encode(), self._key_id.encode()):
            raise S3Error("InvalidAccessKeyId")
        amz = sorted(
            (k[5:].lower().replace("_", "-"), " ".join(str(v).split()))
            for k, v in environ.items()
            if k.startswith("HTTP_X_AMZ_")
        )
        resource = _raw_path(environ)
        sub = sorted((k, v) for k, v in params.items() if k in _V2_SUBRESOURCES)
        if sub:
            resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in sub)
        to_sign = "\n".join(
            [
                environ["REQUEST_METHOD"],
                _header(environ, "content-md5") or "",
                _header(environ, "content-type") or "",
                date,
                *(f"{k}:{v}" for k, v in amz),
                resource,
            ]
        )
        expected = base64.b64encode(hmac.new(self._secret.encode(), to_sign.encode(), hashlib.sha1).digest())
        if not hmac.compare_digest(expected, signature.encode()):
            raise S3Error("SignatureDoesNotMatch")


_V2_SUBRESOURCES = frozenset(
    [
        "acl",
        "cors",
        "delete",
        "lifecycle",
        "location",
        "logging",
        "notification",
        "partNumber",
        "policy",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    ]
)


# --------------------------------------------------------------------------------------- object store


class FlatFileStore:
    """Puts the market's flat files into a private moto bucket when they are first asked for."""

    def __init__(self, market: Market, faults: Faults, account_id: str) -> None:
        from moto.s3.models import FakeBucket, s3_backends

        self.market = market
        self.faults = faults
        self.account_id = account_id
        self.backend = s3_backends[account_id]["aws"]
        self.backend.buckets[BUCKET] = FakeBucket(name=BUCKET, account_id=account_id, region_name=REGION)
        self._stored: dict[str, bool] = {}  # key -> stored version is the republished one
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.renders = 0

    def close(self) -> None:
        with self._guard:
            self.backend.buckets.pop(BUCKET, None)
            self._stored.clear()

    def _visible(self, dataset: str, day: dt.date) -> bool:
        if dataset in flatfiles.MINUTE_DATASETS and not self.market.config.minute:
            return False
        return day <= self.market.today and day in self.market._index and not self.faults.is_missing(day)

    def ensure_key(self, key: str) -> None:
        """Make the bucket's copy of `key` match what the sandbox serves right now."""
        try:
            dataset, day = flatfiles.parse_key(key)
        except ValueError:
            return  # not a flat-file key: moto answers NoSuchKey
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if not self._visible(dataset, day):
                self._drop(key)
                return
            republish = self.faults.is_republished(dataset, day)
            with self._guard:
                if self._stored.get(key) == republish:
                    return
            body = flatfiles.render_file(self.market, dataset, day, republish=republish)
            # the ETag is computed here, once, from the bytes being stored: moto would otherwise hash the
            # object's buffer lazily on the first LIST/HEAD/GET, without its lock, so two requests arriving
            # together (a month listing and a download) interleave their seeks and one caches a wrong
            # ETag for good
            etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
            with self._guard:
                stored = self.backend.put_object(BUCKET, key, body, etag=etag)
                # Last-Modified as Polygon's: published after the session closes (a correction a day later),
                # so listings are the same on every run
                published = calendar.session_bounds(day)[1] + dt.timedelta(
                    hours=2, days=1 if republish else 0
                )
                stored.last_modified = published.astimezone(dt.UTC).replace(tzinfo=None)
                self._stored[key] = republish
                self.renders += 1

    def _drop(self, key: str) -> None:
        with self._guard:
            if self._stored.pop(key, None) is not None:
                self.backend.delete_object(BUCKET, key)

    def ensure_prefix(self, prefix: str, delimiter: str | None) -> None:
        """Materialise what a listing of `prefix` shows (one key per common prefix when delimited)."""
        with self._guard:
            stale = [k for k in self._stored if k.startswith(prefix)]
        for key in stale:
            dataset, day = flatfiles.parse_key(key)
            if not self._visible(dataset, day):
                self._drop(key)
        groups: set[str] = set()
        for dataset, dataset_prefix in flatfiles.PREFIXES.items():
            if not (dataset_prefix.startswith(prefix) or prefix.startswith(dataset_prefix + "/")):
                continue
            for key in flatfiles.keys_for(self.market, dataset):
                if not key.startswith(prefix) or not self._visible(dataset, flatfiles.parse_key(key)[1]):
                    continue
                rest = key[len(prefix) :]
                if delimiter and delimiter in rest:
                    group = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                    if group in groups:
                        continue
                    groups.add(group)
                self.ensure_key(key)


# --------------------------------------------------------------------------------------- WSGI layer


class _Truncated:
    """Body iterator that sends part of the body, then closes (or resets) the connection."""

    def __init__(self, body: Iterable[bytes], cut: float, sock: socket.socket | None) -> None:
        self._body = body
        self._cut = cut
        self._sock = sock

    def __iter__(self) -> Iterator[bytes]:
        data = b"".join(self._body)
        close = getattr(self._body, "close", None)
        if close:
            close()
        keep = min(len(data) - 1, int(len(data) * self._cut))
        if keep > 0:
            yield data[:keep]
        if self._sock is not None:
            if keep <= 0:  # nothing sent: reset the connection (RST) instead of a clean close
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError("sandbox fault: body truncated")


class S3App:
    """The WSGI application serving bucket `flatfiles` for one market."""

    def __init__(self, market: Market, faults: Faults, access_key_id: str, secret_access_key: str) -> None:
        from moto.moto_server.werkzeug_app import create_backend_app

        self.market = market
        self.faults = faults
        self.verifier = SigV4Verifier(access_key_id, secret_access_key)
        # 12-digit account private to this endpoint: moto keeps buckets per account
        self.account_id = f"{secrets.randbelow(9 * 10**11) + 10**11}"
        self.store = FlatFileStore(market, faults, self.account_id)
        self._moto = create_backend_app("s3")
        self.requests = 0  # every request seen, faulted or not (tests check that retries happened)
        # (arrival time.monotonic(), throttle Retry-After seconds or None) of the latest requests: tests check
        # that no client request arrives earlier than a throttling answer allowed
        self.arrivals: deque[tuple[float, int | None]] = deque(maxlen=100_000)
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self.store.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        arrived = time.monotonic()
        with self._count_lock:
            self.requests += 1
        environ["HTTP_HOST"] = environ.get("HTTP_HOST") or "localhost"
        try:
            self.verifier.verify(environ)
            method = environ["REQUEST_METHOD"]
            if method not in ("GET", "HEAD"):
                raise S3Error("AccessDenied", "The flatfiles bucket is read-only")
            wait = self.faults.take_token()
            if wait is not None:
                raise _Throttled(max(1, math.ceil(wait)))
            self.arrivals.append((arrived, None))
            if self.faults.latency > 0:
                time.sleep(self.faults.latency)
            status = self.faults.draw_error()
            if status is not None:
                raise S3Error(_FAULT_CODES[status])
            bucket, key = self._target(environ)
            if key and self.faults.is_denied(key):
                raise S3Error("AccessDenied")
        except _Throttled as exc:
            self.arrivals.append((arrived, exc.seconds))
            return error_response(
                environ, start_response, S3Error("SlowDown"), [("Retry-After", str(exc.seconds))]
            )
        except S3Error as exc:
            return error_response(environ, start_response, exc)

        if bucket == BUCKET and key:
            self.store.ensure_key(key)
        elif bucket == BUCKET and method == "GET" and self._is_listing(environ):
            params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
            self.store.ensure_prefix(params.get("prefix", ""), params.get("delimiter") or None)
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = self.account_id
        cut = self.faults.draw_truncation() if (method == "GET" and bucket == BUCKET and key) else None
        if cut is None:
            return self._moto(environ, start_response)
        captured: dict[str, str] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status
            return start_response(status, headers, exc_info)

        body = self._moto(environ, capture)
        if not captured.get("status", "").startswith(("200", "206")):
            return body
        return _Truncated(body, cut, environ.get("werkzeug.socket"))

    @staticmethod
    def _target(environ: dict[str, Any]) -> tuple[str, str]:
        path = environ.get("PATH_INFO", "/").lstrip("/")
        bucket, _, key = path.partition("/")
        return bucket, key

    @staticmethod
    def _is_listing(environ: dict[str, Any]) -> bool:
        params = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        other = {"location", "versioning", "acl", "policy", "tagging", "uploads", "versions", "cors"}
        return not (other & set(params))


class _Throttled(Exception):
    def __init__(self, seconds: int) -> None:
        self.seconds = seconds


class _QuietHandler(WSGIRequestHandler):
    """Request logging at debug level; dropped connections (the truncation fault) are not errors."""

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        log.debug("s3 %s " + message, type, *args)

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        log.debug("s3 connection dropped: %s", error)


class S3Endpoint:
    """Runs an `S3App` on a loopback port in a background thread."""

    def __init__(
        self,
        market: Market,
        faults: Faults,
        access_key_id: str,
        secret_access_key: str,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app = S3App(market, faults, access_key_id, secret_access_key)
        self.host = host
        self._port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_port if self._server else self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> S3Endpoint:
        self._server = make_server(
            self.host, self._port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-s3", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.app.close()
