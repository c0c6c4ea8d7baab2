"""`quantmini ingest` for the flat-file datasets: what the bucket has published, download to landing,
dlt load, bronze commit.

Each session of the range ends in one of: loaded, skipped (bronze has that file), not published (before
the dataset's first file or after its newest: no ledger item), pending (no file yet, still within the
grace period after the session: the next run asks again), failed or rejected. Systematic errors (no or
wrong credentials, denied first files, unknown host, refused connection) stop the run at once with one
message and their own exit code (`loaders.flatfiles.s3.EXIT_*`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders import bronze, runs
from loaders.calendar import next_session, previous_session, session_bounds, sessions, write_sessions_file
from loaders.config import Settings, load_settings, prepare_dlt_environment, read_setting
from loaders.dates import range_error
from loaders.flatfiles import FileOutcome, Outcomes
from loaders.flatfiles import settings as ff
from loaders.flatfiles.s3 import (
    EXIT_CONFIG,
    EXIT_DENIED,
    EXIT_NO_HOST,
    EXIT_UNREACHABLE,
    ListingRefused,
    Listings,
    MissingFile,
    RemoteFile,
    RunGuard,
    StopRun,
    Throttle,
    download,
    head,
    make_s3_client,
    published_range,
)
from loaders.landing import forget_landed
from loaders.locks import DatasetBusy, dataset_lock
from loaders.progress import IngestProgress
from loaders.units import human_bytes

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BUSY = 0, 1, 2
#: every exit code of `quantmini ingest` for flat files (documented in docs/ingestion.md)
EXIT_CODES = {
    EXIT_OK: "every session loaded, skipped, not published or pending",
    EXIT_FAILED: "some sessions failed or were rejected (see the run ledger)",
    EXIT_BUSY: "bad arguments, or another ingest of the dataset is running",
    EXIT_NO_HOST: "the host of POLYGON_S3_ENDPOINT does not resolve",
    EXIT_UNREACHABLE: "POLYGON_S3_ENDPOINT refuses or drops connections",
    EXIT_DENIED: "the credentials were rejected, or access to the first files was denied",
    EXIT_CONFIG: "a setting is missing or invalid (credentials, endpoint URL, bucket, grace period)",
}
NOT_PUBLISHED = "not_published"


def _pipeline_env(pipeline_name: str) -> None:
    """dlt settings scoped to our pipelines only (other pipelines in the process keep dlt's defaults).

    file_max_items=1 closes a Parquet file after every yielded table: a large file's batch then sits alone
    in its Parquet file, which the destination hard-links instead of rewriting. Small files are gathered
    into one yielded table by the resource, so they share a Parquet file (and a dlt job).
    """
    prefix = pipeline_name.upper()
    values = {
        "DATA_WRITER__FILE_MAX_ITEMS": "1",
        "DATA_WRITER__COMPRESSION": "zstd",
        "LOAD__DELETE_COMPLETED_JOBS": "true",
        "LOAD__AUTO_ABORT_ON_TERMINAL_ERROR": "true",
    }
    for name, value in values.items():
        os.environ[f"{prefix}__{name}"] = value


def make_pipeline(dataset: ff.Dataset, settings: Settings) -> Any:
    """The dataset's dlt pipeline, with its working folder under `$QM_DATA_DIR/dlt/pipelines`."""
    import dlt

    prepare_dlt_environment(settings)
    _pipeline_env(dataset.pipeline_name)
    from loaders.bronze.destinations import flatfiles_destination

    destination = flatfiles_destination(settings.bronze_dir, dataset.name)
    pipeline = dlt.pipeline(
        pipeline_name=dataset.pipeline_name,
        pipelines_dir=str(settings.pipelines_dir / "pipelines"),
        destination=destination,
        dataset_name=dataset.name,
        progress="log" if os.environ.get("QM_PROGRESS") else None,
    )
    # The state lives in the pipeline's working folder only: bronze is a custom destination, which keeps
    # no `_dlt_pipeline_state` table to restore it from. Without this, every run whose state changed
    # (each new session) would add a state document to its package, which dlt normalizes row by row
    # from Python objects and the destination then ignores.
    pipeline.config.restore_from_destination = False
    return pipeline


def _pending_load_ids(pipeline: Any) -> set[str]:
    return set(pipeline.list_extracted_load_packages()) | set(pipeline.list_normalized_load_packages())


def recover(pipeline: Any, dataset: ff.Dataset, settings: Settings) -> list[bronze.CommitResult]:
    """Finish what a killed run left: end every pending dlt package, then commit every complete staged session.

    A package that had to be aborted leaves its staged sessions without their load: they are not committed
    (dlt never confirmed them) and the run loads those sessions again, since bronze lacks them.
    """
    from loaders.recovery import recover_packages

    report = recover_packages(pipeline)
    for load_id in report.aborted:
        shutil.rmtree(bronze.staged_load_dir(settings.bronze_dir, dataset.name, load_id), ignore_errors=True)
    return bronze.commit_staged(
        settings.bronze_dir,
        dataset.name,
        partition_column=ff.PARTITION_COLUMN,
        exclude=_pending_load_ids(pipeline),
    )


@dataclass
class Plan:
    to_load: list[RemoteFile]
    skipped: list[RemoteFile]
    missing: dict[str, str]  # key -> error
    reasons: dict[str, str]  # key -> why it is loaded


def plan(
    dataset: ff.Dataset,
    days: Sequence[dt.date],
    remotes: dict[str, RemoteFile | BaseException],
    state_files: dict[str, list[Any]],
    bronze_root: Path,
    *,
    incremental: bool,
) -> Plan:
    """Which keys to load: all of them with --full; with --incremental the sessions bronze lacks and the
    files whose ETag differs from the one loaded (the state's record, or bronze's `_source_etag`)."""
    present = set(bronze.partition_values(bronze_root, dataset.name, ff.PARTITION_COLUMN))
    result = Plan([], [], {}, {})
    for day in days:
        key = dataset.key(day)
        remote = remotes[key]
        if isinstance(remote, BaseException):
            result.missing[key] = str(remote)
            continue
        if not incremental:
            result.to_load.append(remote)
            result.reasons[key] = "full"
            continue
        if day.isoformat() not in present:
            result.to_load.append(remote)
            result.reasons[key] = "new"
            continue
        known = state_files.get(key, [None])[0]
        if known != remote.etag:
            known = bronze.partition_column_value(
                bronze_root, dataset.name, bronze.partition_name(ff.PARTITION_COLUMN, day), "_source_etag"
            )
        if known != remote.etag:
            result.to_load.append(remote)
            result.reasons[key] = "republished"
        else:
            result.skipped.append(remote)
    return result


# A month with at least this many wanted keys is listed (one request) rather than HEAD-ed key by key.
LIST_MIN_KEYS = 3


def _remote_all(
    listings: Listings, keys: list[str], workers: int, guard: RunGuard | None = None
) -> dict[str, RemoteFile | BaseException]:
    """ETag and size of every key: one listing per month folder holding several of them (or already
    listed in this run), a HEAD for the rest.

    A key a listing does not show is HEAD-ed too, so a missing file is reported with the server's own
    403/404, exactly as when it is asked for alone. A systematic error raises StopRun at once.
    """
    guard = guard or RunGuard("", listings.bucket, "")
    months: dict[str, list[str]] = {}
    for key in keys:
        months.setdefault(key.rsplit("/", 1)[0] + "/", []).append(key)
    out: dict[str, RemoteFile | BaseException] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-head") as pool:
        wanted_listings = {
            prefix: pool.submit(listings.files, prefix)
            for prefix, wanted in months.items()
            if len(wanted) >= LIST_MIN_KEYS or listings.has(prefix)
        }
        listed: dict[str, RemoteFile] = {}
        for prefix, future in wanted_listings.items():
            try:
                listed.update(future.result() or {})
            except Exception as exc:  # the month's keys are HEAD-ed one by one instead
                stop = guard.failed(exc, prefix, len(keys))
                if stop is not None:
                    pool.shutdown(cancel_futures=True)
                    raise stop from None
                log.warning("listing %s failed (%s); asking for each file", prefix, type(exc).__name__)
        heads = {
            key: pool.submit(head, listings.client, listings.bucket, key, guard=guard)
            for key in keys
            if key not in listed
        }
        for key in keys:
            if key in listed:
                out[key] = listed[key]
                continue
            try:
                out[key] = heads[key].result()
                guard.readable()
            except Exception as exc:  # recorded per date, the run goes on
                stop = guard.failed(exc, key, len(keys))
                if stop is not None:
                    pool.shutdown(cancel_futures=True)
                    raise stop from None
                out[key] = exc
    return out


def _download_all(
    client: Any,
    bucket: str,
    remotes: list[RemoteFile],
    landing_root: Path,
    *,
    force: bool,
    workers: int,
    redact: Any,
    stats: dict[str, int],
    guard: RunGuard | None = None,
) -> Iterator[Any]:
    """Yield LandedFile/FailedFile as downloads finish, keeping at most `workers` + 2 files in flight.

    Once the guard has stopped the run, nothing new is started and what fails afterwards is not reported
    per file: those sessions were not attempted.
    """
    from loaders.flatfiles import FailedFile, LandedFile

    guard = guard or RunGuard("", bucket, "")
    pending: deque[tuple[RemoteFile, Future[Any]]] = deque()
    queue = list(remotes)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-get") as pool:

        def submit() -> None:
            while queue and len(pending) < workers + 2 and guard.stopped is None:
                remote = queue.pop(0)
                pending.append(
                    (
                        remote,
                        pool.submit(download, client, bucket, remote, landing_root, force=force, guard=guard),
                    )
                )

        submit()
        while pending:
            # first finished future, else the oldest
            index = next((i for i, (_, f) in enumerate(pending) if f.done()), 0)
            remote, future = pending[index]
            del pending[index]
            try:
                path, etag, fetched = future.result()
            except Exception as exc:
                if guard.failed(exc, remote.key, len(remotes)) is not None or guard.stopped is not None:
                    continue  # the run stops; reported once, not per file
                kind = "missing" if isinstance(exc, MissingFile) else f"{type(exc).__name__}"
                yield FailedFile(remote.key, remote.session, redact(f"{kind}: {exc}"))
            else:
                guard.readable()
                if fetched:
                    stats["downloaded"] += 1
                    stats["bytes"] += remote.size
                yield LandedFile(remote.key, remote.session, etag, remote.size, path)
            submit()


def load_files(
    pipeline: Any, ds: ff.Dataset, settings: Settings, files: Iterable[Any], outcomes: Any
) -> tuple[list[bronze.CommitResult], str]:
    """Landing -> bronze: run the dlt pipeline over `files`, then commit the complete sessions.

    Returns the commit results and the (redacted) dlt error, empty when the load succeeded.
    """
    from dlt.pipeline.exceptions import PipelineStepFailed

    from loaders.flatfiles import flatfiles_source

    load_error = ""
    try:
        pipeline.run(flatfiles_source(ds, files, outcomes))
    except PipelineStepFailed as exc:
        load_error = settings.redact(f"{exc.step} failed: {exc.exception}")[:2000]
        log.error("dlt %s", load_error)
    commits = bronze.commit_staged(
        settings.bronze_dir,
        ds.name,
        partition_column=ff.PARTITION_COLUMN,
        exclude=_pending_load_ids(pipeline),
    )
    return commits, load_error


# ------------------------------------------------------------------------------------- what is published


@dataclass(frozen=True)
class Publication:
    """What the bucket has published for one dataset: its first and newest session (None: nothing).

    `known` is False when the bucket does not allow listing; every session is then asked for.
    """

    first: dt.date | None
    last: dt.date | None
    known: bool = True

    def covers(self, day: dt.date) -> bool:
        """Whether `day` lies inside the published range (or the range is unknown)."""
        if not self.known:
            return True
        return self.first is not None and self.last is not None and self.first <= day <= self.last

    def describe(self, ds: ff.Dataset) -> str:
        if not self.known:
            return f"{ds.s3_prefix}/ cannot be listed with these credentials"
        if self.first is None:
            return f"no {ds.name} files are published under {ds.s3_prefix}/"
        return f"{ds.name} files are published from {self.first} to {self.last}"


def utcnow() -> dt.datetime:
    """The clock pending sessions are judged by (tests replace it)."""
    return dt.datetime.now(dt.UTC)


def publish_grace_hours() -> float:
    """`QM_PUBLISH_GRACE_HOURS` (environment or .dlt config), default `DEFAULT_PUBLISH_GRACE_HOURS`."""
    raw = read_setting("QM_PUBLISH_GRACE_HOURS")
    if raw in (None, ""):
        return ff.DEFAULT_PUBLISH_GRACE_HOURS
    try:
        hours = float(raw)
    except (TypeError, ValueError):
        hours = -1.0
    if not hours >= 0:
        raise StopRun(
            "config", EXIT_CONFIG, f"QM_PUBLISH_GRACE_HOURS={raw!r}: expected a number of hours >= 0"
        )
    return hours


def due_at(day: dt.date, grace_hours: float) -> dt.datetime:
    """When the file of session `day` should be published at the latest: its close plus the grace."""
    return session_bounds(day)[1] + dt.timedelta(hours=grace_hours)


def unpublished_status(day: dt.date, pub: Publication, now: dt.datetime, grace_hours: float) -> str:
    """How a session without a file is reported: `not_published`, `pending` or `failed`.

    Before the dataset's first file, or when nothing is published, it is not published. After the newest
    file it is pending until its due time, then not published (the bucket is simply behind). Inside the
    published range (or when the range is unknown) it is pending until its due time, then a failure: a
    gap the bucket should not have.
    """
    within = now < due_at(day, grace_hours)
    if pub.known and (pub.first is None or day < pub.first):
        return NOT_PUBLISHED
    if pub.known and pub.last is not None and day > pub.last:
        return runs.PENDING if within else NOT_PUBLISHED
    return runs.PENDING if within else "failed"


def find_publication(listings: Listings, ds: ff.Dataset) -> Publication:
    """The dataset's published range from a few listings; unknown when the bucket refuses to list."""
    try:
        found = published_range(listings, ds.s3_prefix)
    except ListingRefused:
        log.warning("%s: the bucket refuses listings; every session is asked for", ds.name)
        return Publication(None, None, known=False)
    if found is None:
        return Publication(None, None)
    return Publication(*found)


def _self_dismiss(
    settings: Settings, ds: ff.Dataset, pub: Publication, now: dt.datetime, grace: float
) -> int:
    """Dismiss the ledger's failed or pending items that the listing proves can never load (no file is
    published for their date, before the first file or overdue after the newest); returns how many."""
    if not pub.known:
        return 0
    stale = [
        item
        for item in runs.latest_items(settings.runs_dir, ds.name)
        if item["status"] in runs.FAILED_STATUSES | {runs.PENDING}
        and item.get("date")
        and unpublished_status(dt.date.fromisoformat(item["date"]), pub, now, grace) == NOT_PUBLISHED
    ]
    runs.dismiss(settings.runs_dir, ds.name, stale, f"not published: {pub.describe(ds)}")
    return len(stale)


# ------------------------------------------------------------------------------------------------ command


def _default_range(
    dataset: ff.Dataset,
    settings: Settings,
    start: dt.date | None,
    end: dt.date | None,
    pub: Publication,
) -> tuple[dt.date | None, dt.date | None]:
    """End defaults to the newest published session (the last completed one if the bucket cannot be
    listed); start to the session after bronze's newest one, else to the end. (None, None): nothing is
    published to default to."""
    if end is None:
        if pub.known and pub.last is None:
            return start, None
        end = pub.last if pub.known else previous_session(dt.date.today())
    if start is None:
        present = bronze.partition_values(settings.bronze_dir, dataset.name, ff.PARTITION_COLUMN)
        start = next_session(dt.date.fromisoformat(present[-1])) if present else end
    return start, end


def ingest_command(
    dataset: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    incremental: bool,
    max_concurrent: int,
) -> int:
    """Load the sessions of [start, end] into bronze; see EXIT_CODES for what the exit code means."""
    from loaders.terminal import console as make_console

    console = make_console(stderr=True)
    if dataset not in ff.DATASETS:
        console.print(f"[red]unknown flat-file dataset {dataset!r}; expected one of {sorted(ff.DATASETS)}")
        return EXIT_BUSY
    if (wrong := range_error(start, end)) is not None:
        console.print(f"[red]{wrong}[/red]")
        return EXIT_BUSY
    ds = ff.DATASETS[dataset]
    settings = load_settings()
    write_sessions_file(settings.bronze_dir)  # the session calendar the silver models read
    try:
        with dataset_lock(settings.data_dir, ds.name):
            return _ingest_locked(
                ds,
                settings,
                start,
                end,
                incremental=incremental,
                max_concurrent=max_concurrent,
                console=console,
            )
    except DatasetBusy as exc:
        console.print(f"[red]{exc}")
        return EXIT_BUSY


def _stopped(console: Any, run: runs.Run, stop: StopRun, settings: Settings) -> int:
    """Record and report a run stopped by a systematic error; returns its exit code."""
    message = settings.redact(stop.message)
    run.notes.update(stopped=stop.kind, exit_code=stop.code)
    run.finish("failed", error=message)
    console.print(f"[red]{run.dataset}: stopped: {message}[/red]", soft_wrap=True)
    console.print(f"exit code {stop.code}: {EXIT_CODES.get(stop.code, stop.kind)}", soft_wrap=True)
    return stop.code


def _ingest_locked(
    ds: ff.Dataset,
    settings: Settings,
    start: dt.date | None,
    end: dt.date | None,
    *,
    incremental: bool,
    max_concurrent: int,
    console: Any,
) -> int:
    from dlt.pipeline.exceptions import PipelineStepFailed

    from loaders.flatfiles import loaded_files

    started = time.monotonic()
    mode = "incremental" if incremental else "full"
    run = runs.start_run(
        settings.runs_dir,
        ds.name,
        "flatfiles",
        {"start": start and start.isoformat(), "end": end and end.isoformat(), "mode": mode},
        announce=False,  # announced once there is work: a run that finds nothing to do leaves no line
    )
    throttle = Throttle()
    guard = RunGuard(settings.s3_endpoint, settings.s3_bucket, ds.s3_prefix + "/")
    try:
        grace = publish_grace_hours()
        client = make_s3_client(
            settings.s3_endpoint,
            settings.s3_access_key_id.reveal(),
            settings.s3_secret_access_key.reveal(),
            max_concurrent,
            throttle=throttle,
        )
        listings = Listings(client, settings.s3_bucket, guard)
        pub = find_publication(listings, ds)
    except StopRun as exc:
        return _stopped(console, run, exc, settings)
    except Exception as exc:  # the probe is only a help: without it every session is asked for
        stop = guard.failed(exc, ds.s3_prefix, 1)
        if stop is not None:
            return _stopped(console, run, stop, settings)
        log.warning("%s: cannot list the bucket (%s); every session is asked for", ds.name, exc)
        pub = Publication(None, None, known=False)
    now = utcnow()
    dismissed = _self_dismiss(settings, ds, pub, now, grace)
    if dismissed:
        console.print(
            f"{ds.name}: dismissed {dismissed} ledger item(s) the bucket proves were never published"
        )

    start, end = _default_range(ds, settings, start, end, pub)
    if end is None or start is None:
        console.print(f"[yellow]{ds.name}: {pub.describe(ds)}; nothing to load[/yellow]")
        return EXIT_OK
    if (
        end < start
    ):  # a defaulted bound: bronze (or -s) is already past the end; two explicit ones were checked
        console.print(f"{ds.name}: up to date through {end} ({pub.describe(ds)}); nothing to load")
        return EXIT_OK
    run.args.update(start=start.isoformat(), end=end.isoformat())
    run.announce()

    pipeline = make_pipeline(ds, settings)
    try:
        recovered = recover(pipeline, ds, settings)
    except PipelineStepFailed as exc:
        console.print(f"[red]could not finish an earlier interrupted load: {settings.redact(str(exc))[:500]}")
        run.finish("failed", error=settings.redact(str(exc))[:2000])
        return EXIT_FAILED
    if recovered:
        done = sum(1 for r in recovered if r.committed)
        console.print(f"finished an interrupted load: {done} session(s) committed")

    days = sessions(start, end)
    unpublished: dict[str, str] = {}  # iso date -> not_published | pending, decided without a request
    asked: list[dt.date] = []
    for day in days:
        if pub.covers(day):
            asked.append(day)
        else:
            unpublished[day.isoformat()] = unpublished_status(day, pub, now, grace)
    try:
        remotes = _remote_all(listings, [ds.key(day) for day in asked], max_concurrent, guard)
    except StopRun as exc:
        return _stopped(console, run, exc, settings)
    for day in asked:  # a 404: pending until its due time, then a gap the bucket should not have
        remote = remotes[ds.key(day)]
        if isinstance(remote, MissingFile) and remote.status == 404:
            unpublished[day.isoformat()] = unpublished_status(day, pub, now, grace)
    todo = plan(
        ds,
        [d for d in asked if d.isoformat() not in unpublished],
        remotes,
        loaded_files(pipeline, ds),
        settings.bronze_dir,
        incremental=incremental,
    )

    progress = IngestProgress(
        console, ds.name, files=len(todo.to_load), size=sum(r.size for r in todo.to_load)
    )
    outcomes = _CountedOutcomes(progress)
    stats = {"downloaded": 0, "bytes": 0}
    load_error = ""
    commits: list[bronze.CommitResult] = []
    if todo.to_load:
        files = _download_all(
            client,
            settings.s3_bucket,
            todo.to_load,
            settings.landing_dir,
            force=not incremental,
            workers=max_concurrent,
            redact=settings.redact,
            stats=stats,
            guard=guard,
        )
        with progress:
            sizes = {r.key: r.size for r in todo.to_load}
            commits, load_error = load_files(
                pipeline, ds, settings, _counted(files, progress, sizes), outcomes
            )
    committed = {r.partition.split("=", 1)[1]: r for r in commits if r.committed}

    rows_out: list[tuple[str, str, str, str, str]] = []
    not_published: list[str] = []
    not_attempted = 0
    for day in days:
        key = ds.key(day)
        iso = day.isoformat()
        outcome = outcomes.by_key.get(key)
        state = unpublished.get(iso)
        if state == NOT_PUBLISHED:
            not_published.append(iso)
        elif state == runs.PENDING:
            due = due_at(day, grace).isoformat().replace("+00:00", "Z")
            run.add(runs.PENDING, date=iso, key=key, due=due)
            rows_out.append((iso, runs.PENDING, "", f"not published yet; due by {due}", ""))
        elif state == "failed":
            error = settings.redact(
                f"{remotes[key]}; due by {due_at(day, grace):%Y-%m-%d %H:%M} UTC, the bucket has files "
                f"before and after it. If it is gone for good: quantmini retry-failed --dismiss -t {ds.name} "
                f"-s {iso} -e {iso}"
            )
            run.add("failed", date=iso, key=key, error=error)
            rows_out.append((iso, "failed", "", "", error))
        elif key in todo.missing:
            run.add("failed", date=iso, key=key, error=settings.redact(todo.missing[key]))
            rows_out.append((iso, "failed", "", "", settings.redact(todo.missing[key])))
        elif key in todo.reasons:
            if outcome is not None and outcome.status in ("failed", "rejected"):
                if outcome.status == "rejected":
                    forget_landed(settings.landing_dir, key)
                run.add(outcome.status, date=iso, key=key, etag=outcome.etag or None, error=outcome.error)
                rows_out.append((iso, outcome.status, "", "", outcome.error))
            elif iso in committed and outcome is not None:
                why = todo.reasons[key]
                run.add("loaded", date=iso, key=key, rows=outcome.rows, etag=outcome.etag, reason=why)
                rows_out.append((iso, "loaded", f"{outcome.rows:,}", why, ""))
            elif guard.stopped is not None and outcome is None:
                not_attempted += 1
                rows_out.append((iso, "not attempted", "", "the run stopped", ""))
            else:
                error = load_error or "not committed: the load did not complete"
                run.add("failed", date=iso, key=key, error=error)
                rows_out.append((iso, "failed", "", "", error))
        else:
            remote = remotes[key]
            etag = remote.etag if isinstance(remote, RemoteFile) else None
            run.add("skipped", date=iso, key=key, etag=etag)
            rows_out.append((iso, "skipped", "", "up to date", ""))
    if not_published:
        run.notes["not_published"] = len(not_published)
        run.notes["published"] = {
            "first": pub.first and pub.first.isoformat(),
            "last": pub.last and pub.last.isoformat(),
        }
    if throttle.throttled:
        run.notes["throttled"] = throttle.throttled
    seconds = time.monotonic() - started
    summary = (ds, run, rows_out, stats, incremental, not_published, pub, throttle, seconds)
    if guard.stopped is not None:
        run.notes["not_attempted"] = not_attempted
        _print_summary(console, *summary)
        return _stopped(console, run, guard.stopped, settings)
    record = run.finish(error=load_error or None)
    _print_summary(console, *summary, record)
    return EXIT_FAILED if record["status"] == "failed" else EXIT_OK


class _CountedOutcomes(Outcomes):
    """The resource's per-file outcomes, each parsed file's rows also counted into the live progress."""

    def __init__(self, progress: IngestProgress) -> None:
        super().__init__()
        self.progress = progress

    def add(self, outcome: FileOutcome) -> None:
        super().add(outcome)
        if outcome.status == "parsed":
            self.progress.advance(rows=outcome.rows)


def _counted(files: Iterable[Any], progress: IngestProgress, sizes: dict[str, int]) -> Iterator[Any]:
    """The landed (or failed) files as the resource takes them, each counted as done in the progress."""
    for item in files:
        progress.advance(files=1, size=sizes.get(item.key, 0))
        yield item
    progress.set_phase("loading into bronze")


#: failed sessions listed one per line in the summary; the rest are counted (the ledger has them all)
SHOWN_FAILURES = 25
FAILED_RESULTS = ("failed", "rejected")


def _print_summary(
    console: Any,
    ds: ff.FlatFileDataset,
    run: runs.Run,
    rows: list[tuple[str, str, str, str, str]],
    stats: dict[str, int],
    incremental: bool,
    not_published: list[str],
    pub: Publication,
    throttle: Throttle,
    seconds: float,
    record: dict[str, Any] | None = None,
) -> None:
    """A few lines whatever the range: the counts, rows, bytes and time, then only what went wrong.

    Loaded and skipped sessions are counted, not listed; pending and not-published ones are counted with
    their span; failed and rejected ones are listed with their error (up to `SHOWN_FAILURES`)."""
    from collections import Counter

    from rich.markup import escape

    counts = Counter(r[1] for r in rows)
    dates = sorted([r[0] for r in rows] + not_published)
    span = f" {dates[0]}..{dates[-1]}" if dates else ""
    loaded_rows = sum(int(i.get("rows") or 0) for i in run.items if i["status"] == "loaded")
    mode = "incremental" if incremental else "full"
    console.print(
        f"[bold]{ds.name}[/bold] ({mode}, pipeline {ds.pipeline_name}): {len(dates)} session(s){span} "
        f"in {seconds:.1f}s"
    )
    parts = [
        f"[green]loaded {counts['loaded']}[/green]",
        f"skipped {counts['skipped']}",
        f"not published {len(not_published)}",
        f"[yellow]pending {counts[runs.PENDING]}[/yellow]" if counts[runs.PENDING] else "pending 0",
        f"[red]failed {counts['failed']}[/red]" if counts["failed"] else "failed 0",
    ]
    if counts["rejected"]:
        parts.append(f"[red]rejected {counts['rejected']}[/red]")
    if counts["not attempted"]:
        parts.append(f"[yellow]not attempted {counts['not attempted']}[/yellow]")
    console.print(
        f"{ds.name}: {', '.join(parts)}; {loaded_rows:,} rows; downloaded {stats['downloaded']} file(s), "
        f"{human_bytes(stats['bytes'])}"
        + (f"; run {record['run_id']} recorded in the ledger" if record else "")
    )
    failures = [r for r in rows if r[1] in FAILED_RESULTS]
    if failures:
        console.print(f"[red]{ds.name}: {len(failures)} session(s) failed:[/red]")
        for session, result, _, _, error in failures[:SHOWN_FAILURES]:
            console.print(f"  {session} [red]{result}[/red]: {escape(error[:300])}")
        if len(failures) > SHOWN_FAILURES:
            console.print(
                f"  ... and {len(failures) - SHOWN_FAILURES} more (`quantmini retry-failed --dry-run` lists them)"
            )
    pending = [r for r in rows if r[1] == runs.PENDING]
    if pending:
        console.print(
            f"{ds.name}: {len(pending)} session(s) pending ({pending[0][0]}..{pending[-1][0]}): "
            f"{pending[0][3]}; the next run asks again"
        )
    if not_published:
        console.print(
            f"{ds.name}: {len(not_published)} session(s) not published ({not_published[0]}..{not_published[-1]}): "
            f"{pub.describe(ds)}; not failures, not in the ledger"
        )
    if throttle.throttled:
        console.print(
            f"{ds.name}: throttled {throttle.throttled} time(s) by the endpoint; every request waited "
            f"{throttle.paused_seconds:.1f}s in all"
        )
