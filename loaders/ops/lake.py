"""`quantmini lake pull|push`: keep the data directory in an S3-compatible bucket between runs.

A scheduled runner (GitHub Actions, a fresh VM) starts with an empty disk. `pull` brings the lake down
before a refresh and `push` sends back what changed after it, so bronze, dlt state, the run ledger,
silver and gold survive from run to run in storage the user owns, not in a cache that may be evicted.

Layout in the bucket (under `QM_LAKE_S3_PREFIX`, default `quantmini`):
- `objects/<sha256[:2]>/<sha256>`: file contents, content-addressed, never overwritten;
- `manifest.json`: `{"schema": "quantmini.lake/1", "generation": N, "files": {path: {size, sha256}},
  "dirs": [empty folders]}`, the one object that says what makes up the lake. It is written last, in
  one PUT. Empty folders are part of it because dlt expects its pipelines' `load/...` folders to exist.

Push uploads only contents the manifest does not have yet, then writes the new manifest, then deletes
objects no manifest refers to any more. An interrupted push leaves the old manifest and its objects
intact. Pull downloads only files whose contents differ from the local ones, into a staging folder,
checks each against its hash and moves them into place only once every download succeeded: an
interrupted pull leaves the lake as it was. File hashes are cached by size and modification time in
`.lake/state.json`, so unchanged files are not read again.

Deletions are deliberate. The state also records the manifest generation the local lake is based on.
A push deletes from the lake exactly the files that were in that base manifest and are gone locally
(e.g. removed by `cleanup --bronze`); a pull deletes the local files the lake no longer has, but only
those it had given out, never files that were only ever local. A push refuses when the bucket moved on
since the local base (another run pushed in between) or when it would drop most of the lake (a runner
that forgot to pull), unless `--force`.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from loaders.config import Secret, Settings, _lookup
from loaders.landing import atomic_write

SCHEMA = "quantmini.lake/1"
STATE_DIR = ".lake"
MANIFEST = "manifest.json"
DEFAULT_PREFIX = "quantmini"
# top-level folders that are scratch space or can be downloaded again: never synced
EXCLUDED_TOP = {"landing", "dbt", "duckdb_tmp", "logs", "reports", STATE_DIR}
# path parts of transient files: writers' staging folders, temp files, locks
EXCLUDED_PARTS = (".staging", ".tmp")
EXCLUDED_SUFFIXES = (".lock", ".tmp")
# a push that would remove more than this share of a lake of at least MIN_GUARDED files is refused
SHRINK_GUARD = 0.5
MIN_GUARDED = 20
EXIT_OK, EXIT_FAILED, EXIT_SETTINGS, EXIT_REFUSED = 0, 1, 2, 3


class LakeError(RuntimeError):
    """A clear, user-facing problem; `code` is the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class LakeSettings:
    endpoint: str | None
    bucket: str
    prefix: str
    access_key_id: Secret
    secret_access_key: Secret
    region: str

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint}" if self.endpoint else "")


def load_lake_settings() -> LakeSettings:
    """`QM_LAKE_S3_*` from the environment or `.dlt` config/secrets; names what is missing."""
    bucket = _lookup("QM_LAKE_S3_BUCKET")
    key_id = _lookup("QM_LAKE_S3_ACCESS_KEY_ID")
    secret = _lookup("QM_LAKE_S3_SECRET_ACCESS_KEY")
    missing = [
        name
        for name, value in (
            ("QM_LAKE_S3_BUCKET", bucket),
            ("QM_LAKE_S3_ACCESS_KEY_ID", key_id),
            ("QM_LAKE_S3_SECRET_ACCESS_KEY", secret),
        )
        if not value
    ]
    if missing:
        raise LakeError(
            f"lake storage not configured: set {', '.join(missing)} "
            "(and QM_LAKE_S3_ENDPOINT for a non-AWS S3 service); see docs/operations.md",
            EXIT_SETTINGS,
        )
    return LakeSettings(
        endpoint=_lookup("QM_LAKE_S3_ENDPOINT") or None,
        bucket=str(bucket),
        prefix=str(_lookup("QM_LAKE_S3_PREFIX", default=DEFAULT_PREFIX)).strip("/"),
        access_key_id=Secret(str(key_id)),
        secret_access_key=Secret(str(secret)),
        region=str(_lookup("QM_LAKE_S3_REGION", default="us-east-1")),
    )


def make_client(lake: LakeSettings) -> Any:
    """boto3 S3 client with exactly the lake's keys (never the ambient AWS credential chain)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=lake.endpoint,
        aws_access_key_id=lake.access_key_id.reveal(),
        aws_secret_access_key=lake.secret_access_key.reveal(),
        region_name=lake.region,
        config=Config(
            retries={"max_attempts": 8, "mode": "adaptive"},
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            max_pool_connections=16,
        ),
    )


# ---- local side ---------------------------------------------------------------------------------------


def synced(rel: PurePosixPath) -> bool:
    """Whether a data-dir-relative path belongs in the lake."""
    if not rel.parts or rel.parts[0] in EXCLUDED_TOP:
        return False
    if any(part.startswith(EXCLUDED_PARTS) for part in rel.parts):
        return False
    return not rel.name.endswith(EXCLUDED_SUFFIXES)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class LocalState:
    """What `.lake/state.json` remembers: the base manifest generation and a hash cache."""

    generation: int = 0
    base: dict[str, dict[str, Any]] = field(default_factory=dict)  # the manifest files last synced
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> size, mtime_ns, sha256

    @classmethod
    def load(cls, data_dir: Path) -> LocalState:
        path = data_dir / STATE_DIR / "state.json"
        if not path.is_file():
            return cls()
        try:
            raw = json.loads(path.read_text())
            return cls(int(raw.get("generation", 0)), dict(raw.get("base", {})), dict(raw.get("cache", {})))
        except (ValueError, TypeError, AttributeError):
            return cls()  # an unreadable cache only costs re-hashing

    def save(self, data_dir: Path) -> None:
        state = json.dumps({"generation": self.generation, "base": self.base, "cache": self.cache})
        atomic_write(data_dir / STATE_DIR / "state.json", state, durable=False)


def empty_dirs(data_dir: Path) -> list[str]:
    """Empty folders of dlt's pipelines: dlt fails when its `load/...` folders are missing. (Elsewhere an
    empty folder carries nothing; a bronze session folder without files even counts as missing.)"""
    root = data_dir / "dlt"
    if not root.is_dir():
        return []
    return sorted(
        rel.as_posix()
        for path in root.rglob("*")
        if path.is_dir()
        and not path.is_symlink()
        and synced(rel := PurePosixPath(path.relative_to(data_dir).as_posix()))
        and not any(path.iterdir())
    )


def scan(data_dir: Path, state: LocalState) -> dict[str, dict[str, Any]]:
    """Path -> {size, sha256} of every synced local file, hashing only files not in the cache."""
    files: dict[str, dict[str, Any]] = {}
    cache: dict[str, dict[str, Any]] = {}
    if data_dir.is_dir():
        for path in sorted(data_dir.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            rel = PurePosixPath(path.relative_to(data_dir).as_posix())
            if not synced(rel):
                continue
            st = path.stat()
            known = state.cache.get(str(rel))
            if known and known.get("size") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns:
                sha = str(known["sha256"])
            else:
                sha = _sha256(path)
            files[str(rel)] = {"size": st.st_size, "sha256": sha}
            cache[str(rel)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}
    state.cache = cache
    return files


# ---- remote side --------------------------------------------------------------------------------------


def _is_missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) in {"NoSuchKey", "404", "NotFound"}


def _describe(exc: Exception, lake: LakeSettings) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", "")) or type(exc).__name__
    hint = ""
    if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"}:
        hint = " (check QM_LAKE_S3_ACCESS_KEY_ID / QM_LAKE_S3_SECRET_ACCESS_KEY and the bucket's permissions)"
    elif code in {"NoSuchBucket"}:
        hint = " (create the bucket or fix QM_LAKE_S3_BUCKET)"
    elif "Endpoint" in code or "Connect" in code:
        hint = " (check QM_LAKE_S3_ENDPOINT)"
    return f"{lake.where}: {code}: {str(exc).splitlines()[0]}{hint}"


def read_manifest(client: Any, lake: LakeSettings) -> dict[str, Any] | None:
    """The lake's manifest, or None when the bucket holds no lake yet."""
    try:
        body = client.get_object(Bucket=lake.bucket, Key=lake.key(MANIFEST))["Body"].read()
    except Exception as exc:
        if _is_missing(exc):
            return None
        raise LakeError(_describe(exc, lake)) from exc
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise LakeError(f"{lake.where}/{MANIFEST} is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise LakeError(
            f"{lake.where}/{MANIFEST}: expected schema {SCHEMA!r}, got {manifest.get('schema')!r}"
        )
    return manifest


def object_key(lake: LakeSettings, sha: str) -> str:
    return lake.key("objects", sha[:2], sha)


def _parallel(fn: Callable[[Any], None], items: Iterable[Any], workers: int = 4) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()


# ---- push / pull --------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    action: str
    generation: int = 0
    files: int = 0
    transferred: int = 0
    transferred_bytes: int = 0
    deleted: int = 0
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "uploaded" if self.action == "push" else "downloaded"
        return (
            f"lake {self.action}: generation {self.generation}, {self.files} files; {verb} "
            f"{self.transferred} ({human(self.transferred_bytes)}), deleted {self.deleted}, "
            f"unchanged {self.unchanged}"
        )


def human(n: int) -> str:
    from loaders.units import human_bytes

    return human_bytes(n)


def push(settings: Settings, lake: LakeSettings, *, force: bool = False, dry_run: bool = False) -> SyncResult:
    data_dir = settings.data_dir
    state = LocalState.load(data_dir)
    client = make_client(lake)
    remote = read_manifest(client, lake)
    remote_files: dict[str, dict[str, Any]] = (remote or {}).get("files", {})
    remote_generation = int((remote or {}).get("generation", 0))
    local = scan(data_dir, state)
    local_dirs = empty_dirs(data_dir)
    result = SyncResult("push", generation=remote_generation)

    if remote is not None and remote_generation != state.generation and not force:
        raise LakeError(
            f"{lake.where} is at generation {remote_generation} but this lake is based on generation "
            f"{state.generation}: another run pushed since, or this data dir was never pulled. Run "
            "`quantmini lake pull` first (or `push --force` to replace the bucket's lake with this one).",
            EXIT_REFUSED,
        )
    removed = sorted(p for p in remote_files if p not in local)
    if not force and len(remote_files) >= MIN_GUARDED and len(removed) > SHRINK_GUARD * len(remote_files):
        raise LakeError(
            f"push would delete {len(removed)} of the {len(remote_files)} files in {lake.where} "
            f"(e.g. {removed[0]}): refusing, as this looks like a data dir that was not pulled. "
            "Pull first, or pass --force if the deletions are meant.",
            EXIT_REFUSED,
        )

    stored = {entry["sha256"] for entry in remote_files.values()}
    uploads: dict[str, str] = {}  # sha -> a local path with that content
    for path, entry in local.items():
        if remote_files.get(path) == entry:
            result.unchanged += 1
        elif entry["sha256"] not in stored:
            uploads.setdefault(entry["sha256"], path)
    result.files = len(local)
    result.transferred = len(uploads)
    result.transferred_bytes = sum(local[p]["size"] for p in uploads.values())
    result.deleted = len(removed)
    if remote is not None and remote_files == local and remote.get("dirs", []) == local_dirs:
        result.notes.append(f"{lake.where} already holds this lake: nothing to push")
        return result
    if dry_run:
        return result

    def upload(item: tuple[str, str]) -> None:
        sha, path = item
        client.upload_file(str(data_dir / path), lake.bucket, object_key(lake, sha))

    try:
        _parallel(upload, sorted(uploads.items()))
        manifest = {
            "schema": SCHEMA,
            "generation": remote_generation + 1,
            "pushed_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "files": local,
            "dirs": local_dirs,
        }
        client.put_object(
            Bucket=lake.bucket,
            Key=lake.key(MANIFEST),
            Body=json.dumps(manifest, sort_keys=True).encode(),
            ContentType="application/json",
        )
    except LakeError:
        raise
    except Exception as exc:
        raise LakeError(_describe(exc, lake)) from exc
    result.generation = remote_generation + 1
    state.generation, state.base = result.generation, local
    state.save(data_dir)
    # the new manifest is in place: contents nothing refers to any more can go
    referenced = {entry["sha256"] for entry in local.values()}
    try:
        _collect_garbage(client, lake, referenced)
    except Exception as exc:  # the lake is consistent; stale objects only cost space until next push
        result.notes.append(f"could not delete unreferenced objects: {_describe(exc, lake)}")
    return result


def _collect_garbage(client: Any, lake: LakeSettings, referenced: set[str]) -> None:
    stale: list[dict[str, str]] = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=lake.bucket, Prefix=lake.key("objects") + "/"):
        for obj in page.get("Contents", []):
            if obj["Key"].rsplit("/", 1)[-1] not in referenced:
                stale.append({"Key": obj["Key"]})
    for start in range(0, len(stale), 1000):
        client.delete_objects(
            Bucket=lake.bucket, Delete={"Objects": stale[start : start + 1000], "Quiet": True}
        )


def pull(settings: Settings, lake: LakeSettings, *, dry_run: bool = False) -> SyncResult:
    data_dir = settings.data_dir
    state = LocalState.load(data_dir)
    client = make_client(lake)
    remote = read_manifest(client, lake)
    result = SyncResult("pull")
    if remote is None:
        result.notes.append(f"{lake.where} holds no lake yet: nothing to pull (a first push creates it)")
        return result
    remote_files: dict[str, dict[str, Any]] = remote.get("files", {})
    result.generation = int(remote.get("generation", 0))
    result.files = len(remote_files)
    local = scan(data_dir, state)
    fetch = {p: e for p, e in remote_files.items() if local.get(p, {}).get("sha256") != e["sha256"]}
    # files the lake gave out (or took) before and no longer has; files only ever local stay
    gone = sorted(p for p in local if p not in remote_files and p in state.base)
    result.unchanged = len(remote_files) - len(fetch)
    result.transferred = len(fetch)
    result.transferred_bytes = sum(int(e["size"]) for e in fetch.values())
    result.deleted = len(gone)
    if dry_run:
        return result

    incoming = data_dir / STATE_DIR / "incoming"
    shutil.rmtree(incoming, ignore_errors=True)  # what an interrupted pull left
    incoming.mkdir(parents=True)

    def download(item: tuple[str, dict[str, Any]]) -> None:
        path, entry = item
        target = incoming / path
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(lake.bucket, object_key(lake, entry["sha256"]), str(target))
        if target.stat().st_size != int(entry["size"]) or _sha256(target) != entry["sha256"]:
            raise LakeError(f"{lake.where}: {path} does not match its manifest hash after download")

    try:
        _parallel(download, sorted(fetch.items()))
    except LakeError:
        raise
    except Exception as exc:
        raise LakeError(_describe(exc, lake) + "; the local lake was left as it was") from exc
    # every file is here and checked: move them into place (each move is atomic)
    for path in sorted(fetch):
        target = data_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(incoming / path, target)
        st = target.stat()
        state.cache[path] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": fetch[path]["sha256"]}
    for path in gone:
        (data_dir / path).unlink(missing_ok=True)
        state.cache.pop(path, None)
        _prune_empty_parents(data_dir, data_dir / path)
    for folder in remote.get("dirs", []):
        if synced(PurePosixPath(folder)):
            (data_dir / folder).mkdir(parents=True, exist_ok=True)
    shutil.rmtree(incoming, ignore_errors=True)
    state.generation, state.base = result.generation, dict(remote_files)
    state.save(data_dir)
    return result


def _prune_empty_parents(root: Path, path: Path) -> None:
    parent = path.parent
    while parent != root and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def lake_command(action: str, *, force: bool = False, dry_run: bool = False) -> int:
    from loaders.config import load_settings
    from loaders.terminal import console as make_console

    console = make_console()
    try:
        lake = load_lake_settings()
        settings = load_settings()
        if action == "push":
            result = push(settings, lake, force=force, dry_run=dry_run)
        else:
            result = pull(settings, lake, dry_run=dry_run)
    except LakeError as exc:
        console.print(f"[red]lake {action}: {exc}[/red]")
        return exc.code
    for note in result.notes:
        console.print(f"[yellow]{note}[/yellow]")
    console.print(("[dim](dry run)[/dim] " if dry_run else "") + result.summary())
    return EXIT_OK
