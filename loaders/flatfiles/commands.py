"""`quantmini ingest` for the flat-file datasets: HEAD, download to landing, dlt load, bronze commit."""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders import bronze, runs
from loaders.calendar import next_session, previous_session, sessions
from loaders.config import Settings, load_settings, prepare_dlt_environment
from loaders.flatfiles import settings as ff
from loaders.flatfiles.helpers import (
    MissingFile,
    RemoteFile,
    download,
    forget_landed,
    head,
    human_bytes,
    list_prefix,
    make_s3_client,
    session_from_key,
)
from loaders.locks import DatasetBusy, dataset_lock

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BUSY = 0, 1, 2


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


def make_pipeline(dataset: ff.FlatFileDataset, settings: Settings) -> Any:
    """The dataset's dlt pipeline, with its working folder under `$QM_DATA_DIR/dlt/pipelines`."""
    import dlt

    prepare_dlt_environment(settings)
    _pipeline_env(dataset.pipeline_name)
    destination = bronze.bronze_destination(
        settings.bronze_dir,
        dataset.name,
        data_table=dataset.name,
        manifest_table=dataset.manifest_table,
        partition_column=ff.PARTITION_COLUMN,
        partition_of=session_from_key,
    )
    return dlt.pipeline(
        pipeline_name=dataset.pipeline_name,
        pipelines_dir=str(settings.pipelines_dir / "pipelines"),
        destination=destination,
        dataset_name=dataset.name,
        progress="log" if os.environ.get("QM_PROGRESS") else None,
    )


def _pending_load_ids(pipeline: Any) -> set[str]:
    return set(pipeline.list_extracted_load_packages()) | set(pipeline.list_normalized_load_packages())


def recover(pipeline: Any, dataset: ff.FlatFileDataset, settings: Settings) -> list[bronze.CommitResult]:
    """Finish what a killed run left: end every pending dlt package, then commit every complete staged session.

    A package that had to be aborted leaves its staged sessions without their load: they are not committed
    (dlt never confirmed them) and the run loads those sessions again, since bronze lacks them.
    """
    from loaders.recovery import recover_packages

    report = recover_packages(pipeline)
    for load_id in report.aborted:
        shutil.rmtree(bronze._load_dir(settings.bronze_dir, dataset.name, load_id), ignore_errors=True)
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
    dataset: ff.FlatFileDataset,
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
    client: Any, bucket: str, keys: list[str], workers: int
) -> dict[str, RemoteFile | BaseException]:
    """ETag and size of every key: one listing per month folder holding several of them, a HEAD for the rest.

    A key a listing does not show is HEAD-ed too, so a missing file is reported with the server's own
    403/404, exactly as when it is asked for alone.
    """
    months: dict[str, list[str]] = {}
    for key in keys:
        months.setdefault(key.rsplit("/", 1)[0] + "/", []).append(key)
    out: dict[str, RemoteFile | BaseException] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-head") as pool:
        listings = {
            prefix: pool.submit(list_prefix, client, bucket, prefix)
            for prefix, wanted in months.items()
            if len(wanted) >= LIST_MIN_KEYS
        }
        listed: dict[str, RemoteFile] = {}
        for prefix, future in listings.items():
            try:
                listed.update(future.result() or {})
            except Exception as exc:  # the month's keys are HEAD-ed one by one instead
                log.warning("listing %s failed (%s); asking for each file", prefix, type(exc).__name__)
        heads = {key: pool.submit(head, client, bucket, key) for key in keys if key not in listed}
        for key in keys:
            if key in listed:
                out[key] = listed[key]
                continue
            try:
                out[key] = heads[key].result()
            except Exception as exc:  # recorded per date, the run goes on
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
) -> Iterator[Any]:
    """Yield LandedFile/FailedFile as downloads finish, keeping at most `workers` + 2 files in flight."""
    from loaders.flatfiles import FailedFile, LandedFile

    pending: deque[tuple[RemoteFile, Future[Any]]] = deque()
    queue = list(remotes)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-get") as pool:

        def submit() -> None:
            while queue and len(pending) < workers + 2:
                remote = queue.pop(0)
                pending.append(
                    (remote, pool.submit(download, client, bucket, remote, landing_root, force=force))
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
                kind = "missing" if isinstance(exc, MissingFile) else f"{type(exc).__name__}"
                yield FailedFile(remote.key, remote.session, redact(f"{kind}: {exc}"))
            else:
                if fetched:
                    stats["downloaded"] += 1
                    stats["bytes"] += remote.size
                yield LandedFile(remote.key, remote.session, etag, remote.size, path)
            submit()


def load_files(
    pipeline: Any, ds: ff.FlatFileDataset, settings: Settings, files: Iterable[Any], outcomes: Any
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


def _default_range(
    dataset: ff.FlatFileDataset, settings: Settings, start: dt.date | None, end: dt.date | None
) -> tuple[dt.date, dt.date]:
    """End defaults to the last completed session; start to the session after bronze's newest one."""
    if end is None:
        end = previous_session(dt.date.today())
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
    """Load the sessions of [start, end] into bronze; exit code 1 if any date failed, 2 if the dataset is busy."""
    from rich.console import Console

    console = Console(stderr=True)
    if dataset not in ff.DATASETS:
        console.print(f"[red]unknown flat-file dataset {dataset!r}; expected one of {sorted(ff.DATASETS)}")
        return EXIT_BUSY
    ds = ff.DATASETS[dataset]
    settings = load_settings()
    explicit_start = start is not None
    start, end = _default_range(ds, settings, start, end)
    if end < start:
        if not explicit_start:  # bronze already holds every session up to `end`
            console.print(f"{ds.name}: bronze is up to date through {end}; nothing to load")
            return EXIT_OK
        console.print(f"[red]end {end} is before start {start}")
        return EXIT_BUSY
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


def _ingest_locked(
    ds: ff.FlatFileDataset,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    *,
    incremental: bool,
    max_concurrent: int,
    console: Any,
) -> int:
    from dlt.pipeline.exceptions import PipelineStepFailed

    from loaders.flatfiles import Outcomes, loaded_files

    days = sessions(start, end)
    run = runs.start_run(
        settings.runs_dir,
        ds.name,
        "flatfiles",
        {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "mode": "incremental" if incremental else "full",
        },
    )
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

    client = make_s3_client(
        settings.s3_endpoint,
        settings.s3_access_key_id.reveal(),
        settings.s3_secret_access_key.reveal(),
        max_concurrent,
    )
    keys = [ds.key(day) for day in days]
    remotes = _remote_all(client, settings.s3_bucket, keys, max_concurrent)
    todo = plan(ds, days, remotes, loaded_files(pipeline, ds), settings.bronze_dir, incremental=incremental)

    outcomes = Outcomes()
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
        )
        commits, load_error = load_files(pipeline, ds, settings, files, outcomes)
    committed = {r.partition.split("=", 1)[1]: r for r in commits if r.committed}

    rows_out: list[tuple[str, str, str, str, str]] = []
    for day in days:
        key = ds.key(day)
        iso = day.isoformat()
        outcome = outcomes.by_key.get(key)
        if key in todo.missing:
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
            else:
                error = load_error or "not committed: the load did not complete"
                run.add("failed", date=iso, key=key, error=error)
                rows_out.append((iso, "failed", "", "", error))
        else:
            remote = remotes[key]
            etag = remote.etag if isinstance(remote, RemoteFile) else None
            run.add("skipped", date=iso, key=key, etag=etag)
            rows_out.append((iso, "skipped", "", "up to date", ""))

    record = run.finish(error=load_error or None)
    _print_summary(console, ds, record, rows_out, stats, incremental)
    return EXIT_FAILED if record["status"] == "failed" else EXIT_OK


def _print_summary(
    console: Any,
    ds: ff.FlatFileDataset,
    record: dict[str, Any],
    rows: list[tuple[str, str, str, str, str]],
    stats: dict[str, int],
    incremental: bool,
) -> None:
    from rich.table import Table

    table = Table(
        title=f"{ds.name} ({'incremental' if incremental else 'full'}) -> pipeline {ds.pipeline_name}"
    )
    for column in ("session", "result", "rows", "note", "error"):
        table.add_column(column, overflow="fold")
    styles = {"loaded": "green", "skipped": "dim", "failed": "red", "rejected": "red"}
    skipped = [r for r in rows if r[1] == "skipped"]
    shown = [r for r in rows if r[1] != "skipped"] if len(rows) > 40 else rows
    for session, result, n, note, error in shown:
        table.add_row(session, f"[{styles.get(result, '')}]{result}", n, note, error[:300])
    if len(shown) < len(rows):
        table.add_row(f"{len(skipped)} more", "skipped", "", "up to date", "")
    console.print(table)
    counts = ", ".join(f"{k}={v}" for k, v in sorted(record["counts"].items())) or "nothing to do"
    console.print(
        f"{ds.name}: {counts}; downloaded {stats['downloaded']} file(s), {human_bytes(stats['bytes'])}; "
        f"run {record['run_id']} recorded in the ledger"
    )
