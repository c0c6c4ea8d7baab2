"""Landing: byte copies of what Polygon served, under `$QM_DATA_DIR/landing/`, for both sources.

- **Atomic writes** (`atomic_write`): every file of the data directory that a reader may open while it is
  written goes through a temporary file and a rename, so a partial file never looks complete.
- **Flat files**: `landing/flatfiles/<key>` as served by S3, and beside it `landing/flatfiles/_meta/<key>.json`
  with the ETag and size of the download. A file counts as landed only when its metadata file is there and
  matches the remote size; deleting the metadata makes the next run fetch the file again.
- **REST pages** (`PageStore`): raw pages of one listing under
  `landing/rest/<dataset>/<listing id>/<fetch started UTC>/page-NNNNNN.json`, written before they are
  parsed, so a killed listing resumes from disk.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

FLATFILES = "flatfiles"
META = "_meta"
REST = "rest"


# --------------------------------------------------------------------------------------------------- writes


def atomic_write(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    `durable` also flushes the file to disk before the rename (a crash then leaves the old file or the
    new one, never an empty one); without it the write is atomic for readers only, which suits caches.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------------- flat files


def flatfile_path(landing_root: Path, key: str) -> Path:
    """Where the landing copy of flat-file `key` lives."""
    return landing_root / FLATFILES / key


def meta_path(landing_root: Path, key: str) -> Path:
    """The metadata file (ETag and size) of the landing copy of `key`."""
    return landing_root / FLATFILES / META / f"{key}.json"


def landed_etag(landing_root: Path, key: str, size: int) -> str | None:
    """ETag of the landing copy of `key` when it is complete and `size` bytes long, else None."""
    try:
        info = json.loads(meta_path(landing_root, key).read_text())
        if flatfile_path(landing_root, key).stat().st_size == int(info["size"]) == size:
            return str(info["etag"])
    except (OSError, ValueError, KeyError):
        return None
    return None


def record_landed(landing_root: Path, key: str, etag: str, size: int) -> None:
    """Mark the landing copy of `key` complete (called after the file itself is in place)."""
    atomic_write(meta_path(landing_root, key), json.dumps({"etag": etag, "size": size}), durable=False)


def forget_landed(landing_root: Path, key: str) -> None:
    """Make the next run fetch `key` again (used when a landed file is rejected)."""
    meta_path(landing_root, key).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------- REST pages

COMPLETE_MARKER = "_COMPLETE"
STALE_MARKER = "_STALE"  # an interrupted fetch whose saved cursor the server no longer accepts
STALE_CURSOR_STATUSES = frozenset({400, 404, 410})


class LandedPageError(RuntimeError):
    """A page in landing that cannot be read back (not valid JSON)."""


class Fetched(Protocol):
    """A successful answer: the bytes as served (for landing) and the decoded JSON."""

    body: bytes
    data: Any


class PageClient(Protocol):
    """What the page store needs from an HTTP client (`loaders.rest.client.PolygonClient`).

    A request refused for good raises an exception whose `status` attribute holds the HTTP status.
    """

    def relative(self, url: str) -> str: ...

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> Fetched: ...


def listing_id(path: str, params: Mapping[str, Any]) -> str:
    """Stable name of a listing request: the same path and parameters give the same folder in landing."""
    canonical = json.dumps([path, sorted((str(k), str(v)) for k, v in params.items())])
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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


class PageStore:
    """Raw pages of one listing under `landing/rest/<dataset>/<listing id>/<fetch started UTC>/`.

    Every fetched page is written (atomically) before it is parsed. A fetch folder without the
    `_COMPLETE` marker is an interrupted listing: the next run with the same request replays its pages
    from disk and continues from the last page's `next_url`, so a killed run neither re-downloads nor
    skips anything. A completed listing is never replayed: the next run fetches fresh pages. Should the
    server reject the saved cursor (expired), the fetch is marked `_STALE` and the listing starts over.
    """

    def __init__(self, root: Path, dataset: str, path: str, params: Mapping[str, Any], secret: str) -> None:
        self.listing = listing_id(path, params)
        self.folder = root / REST / dataset / self.listing
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

    def pages(self, client: PageClient, path: str, params: Mapping[str, Any]) -> Iterator[Page]:
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
                raise LandedPageError(f"landed page {file} is not valid JSON: {exc}") from None
            yield Page(data=data, path=file, number=number, resumed=True)
            next_url = _next_url(data)
            next_params = None
        if saved and not next_url:
            atomic_write(fetch / COMPLETE_MARKER, b"")
            return
        log.info("resuming listing %s after %d landed pages", self.listing, len(saved))
        try:
            yield from self._fetch(client, fetch, number, next_url, next_params)
        except Exception as exc:
            if (
                not saved
                or getattr(exc, "status", None) not in STALE_CURSOR_STATUSES
                or fetch.joinpath(COMPLETE_MARKER).exists()
            ):
                raise
            # The server no longer accepts the saved cursor: start the listing over (rows already
            # yielded come again and are merged by key, so nothing is duplicated).
            log.warning(
                "saved cursor of listing %s rejected (HTTP %s); fetching it again",
                self.listing,
                getattr(exc, "status", None),
            )
            atomic_write(fetch / STALE_MARKER, b"")
            yield from self._fetch(client, self._new_fetch(), 0, path, params)

    def _fetch(
        self,
        client: PageClient,
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
