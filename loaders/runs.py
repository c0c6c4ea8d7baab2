"""Run ledger: one JSON line per ingest run in `$QM_DATA_DIR/runs/<dataset>.jsonl`.

Each line holds the run's arguments, overall status and one item per date (flat files) or page/request
(REST) with its own status, so `quantmini status` can show the last run and `quantmini retry-failed` can
re-run exactly what failed. Lines are appended under a file lock; a reader skips a torn last line.

Line shape::

    {"run_id": "...", "dataset": "stocks_daily", "kind": "flatfiles", "started_at": "...Z",
     "finished_at": "...Z", "status": "ok" | "failed", "args": {...},
     "counts": {"loaded": 3, "skipped": 1, "failed": 1},
     "items": [{"date": "2025-01-02", "key": "...", "status": "loaded", "rows": 123, ...}, ...]}

Item statuses: `loaded`, `skipped` (already in bronze, same ETag), `failed` (download/HTTP error),
`rejected` (bad input), `pending` (a flat file not published yet but still within its grace period: not a
failure, the next run asks again); REST items may use `page` instead of `date`. Sessions the bucket has
not published (before a dataset's first file, after its newest) get no item; the run line counts them
under `not_published`.

`dismiss()` appends a line of kind `dismiss` whose items (status `dismissed`, with a `reason`) clear
earlier failed or pending items for good: by hand (`quantmini retry-failed --dismiss`) for files that
are gone, or by the ingest itself when a listing proves the bucket has no file for the date.

A run is announced when it starts (a line with status `running`, its pid and host) and recorded again
when it ends; readers keep a run's last line. A `running` line whose process is gone is read as
`interrupted` (killed, crashed or out of disk before it could finish): `status` shows it and
`retry-failed` repeats its window until a later run of the dataset finishes.

Each line is written with one `write` under the ledger's lock. A write that fails (disk full) is cut back
to the file's previous size, and a torn line left by a killed writer is closed with a newline before the
next line is added, so one failed write never spoils the next record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

FAILED_STATUSES = frozenset({"failed", "rejected"})
PENDING = "pending"
DISMISSED = "dismissed"
DISMISS_KIND = "dismiss"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ledger_path(runs_dir: Path, dataset: str) -> Path:
    return Path(runs_dir) / f"{dataset}.jsonl"


@dataclass
class Run:
    """A run being recorded; `finish()` appends it to the ledger."""

    runs_dir: Path
    dataset: str
    kind: str
    args: dict[str, Any]
    run_id: str = field(
        default_factory=lambda: f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    )
    started_at: str = field(default_factory=_now)
    items: list[dict[str, Any]] = field(default_factory=list)
    #: extra top-level fields of the run line (e.g. `not_published`, `stopped`)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, status: str, **item: Any) -> None:
        self.items.append({"status": status, **{k: v for k, v in item.items() if v is not None}})

    @property
    def failed(self) -> bool:
        return any(i["status"] in FAILED_STATUSES for i in self.items)

    def announce(self) -> None:
        """Write the run's `running` line (its pid and host), read as `interrupted` if it never finishes."""
        append(
            self.runs_dir,
            self.dataset,
            {
                "run_id": self.run_id,
                "dataset": self.dataset,
                "kind": self.kind,
                "started_at": self.started_at,
                "status": "running",
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "args": self.args,
            },
        )

    def finish(self, status: str | None = None, error: str | None = None) -> dict[str, Any]:
        record: dict[str, Any] = {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "kind": self.kind,
            "started_at": self.started_at,
            "finished_at": _now(),
            "status": status or ("failed" if self.failed else "ok"),
            "args": self.args,
            "counts": dict(Counter(i["status"] for i in self.items)),
            "items": self.items,
        }
        record.update(self.notes)
        if error:
            record["error"] = error
        append(self.runs_dir, self.dataset, record)
        return record


def start_run(runs_dir: Path, dataset: str, kind: str, args: dict[str, Any], *, announce: bool = True) -> Run:
    """A new run; with `announce` its `running` line is written at once, so a run that never finishes shows."""
    run = Run(Path(runs_dir), dataset, kind, args)
    if announce:
        run.announce()
    return run


def _write_line(path: Path, line: str) -> None:
    """Append `line` whole or not at all (ENOSPC leaves the file as it was); close a torn last line first."""
    data = line.encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                data = b"\n" + data
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(28, "short write to the run ledger", str(path))
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def append(runs_dir: Path, dataset: str, record: dict[str, Any]) -> None:
    path = ledger_path(runs_dir, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, default=str, separators=(",", ":")) + "\n"
    with FileLock(str(path) + ".lock"):
        _write_line(path, line)


def _alive(record: dict[str, Any]) -> bool:
    """Whether the process that announced a `running` record still runs (a record from another host: assumed)."""
    if record.get("host") != socket.gethostname():
        return True
    import psutil

    try:
        proc = psutil.Process(int(record.get("pid", -1)))
        started = dt.datetime.strptime(record["started_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
        # a reused pid belongs to a process started after the run
        return proc.create_time() <= started.timestamp() + 1 and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError, KeyError, TypeError):
        return False


def _settle(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("status") != "running" or _alive(record):
        return record
    return {
        **record,
        "status": "interrupted",
        "error": "the run stopped before it finished (killed, crashed or out of disk); "
        "the next run of this dataset finishes or redoes its work",
    }


def read_runs(runs_dir: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """All recorded runs (of one dataset, or of all), oldest first."""
    base = Path(runs_dir)
    paths = [ledger_path(base, dataset)] if dataset else sorted(base.glob("*.jsonl"))
    by_id: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line from a killed writer
            if isinstance(record, dict):
                by_id[str(record.get("run_id", len(by_id)))] = record  # a run's last line wins
    runs = [_settle(r) for r in by_id.values()]
    runs.sort(key=lambda r: r.get("started_at", ""))
    return runs


def last_run(runs_dir: Path, dataset: str) -> dict[str, Any] | None:
    """The newest ingest run of `dataset` (dismissal lines are not runs)."""
    found = [r for r in read_runs(runs_dir, dataset) if r.get("kind") != DISMISS_KIND]
    return found[-1] if found else None


def item_id(item: dict[str, Any]) -> str | None:
    """What an item is about: its date (flat files, dated REST items), page or key."""
    ident = item.get("date") or item.get("page") or item.get("key")
    return None if ident is None else str(ident)


def latest_items(runs_dir: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """The latest recorded item per (dataset, date/page), with its dataset and run id."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for run in read_runs(runs_dir, dataset):
        if run.get("status") == "running":
            continue
        # failed before any date; a run stopped by a systematic error (credentials, endpoint, a setting)
        # is not repeated: it needs the setting fixed, and the next ordinary run then covers its window
        whole_run = run.get("status") == "failed" and not run.get("items") and not run.get("stopped")
        if run.get("status") == "interrupted" or whole_run:
            latest[(run["dataset"], "interrupted")] = {
                "dataset": run["dataset"],
                "run_id": run["run_id"],
                "status": "failed",
                "key": "failed run" if whole_run else "interrupted run",
                "error": run.get("error") or "the run failed before it reached any date",
            }
            continue
        latest.pop((run["dataset"], "interrupted"), None)  # a finished later run has recovered it
        for item in run.get("items", []):
            ident = item_id(item)
            if ident is None:
                continue
            latest[(run["dataset"], ident)] = {"dataset": run["dataset"], "run_id": run["run_id"], **item}
    return list(latest.values())


def outstanding_failures(runs_dir: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """Items whose latest recorded attempt failed (a later success or a dismissal clears them)."""
    return [item for item in latest_items(runs_dir, dataset) if item["status"] in FAILED_STATUSES]


def pending_items(runs_dir: Path, dataset: str | None = None) -> list[dict[str, Any]]:
    """Items whose latest record is `pending`: files not published yet, still within their grace period."""
    return [item for item in latest_items(runs_dir, dataset) if item["status"] == PENDING]


def dismiss(runs_dir: Path, dataset: str, items: list[dict[str, Any]], reason: str) -> dict[str, Any] | None:
    """Clear `items` (latest items of `dataset`) for good with one ledger line; None when there are none."""
    if not items:
        return None
    run = start_run(runs_dir, dataset, DISMISS_KIND, {"reason": reason}, announce=False)
    for item in items:
        ident = {k: item[k] for k in ("date", "page", "key") if item.get(k) is not None}
        run.add(DISMISSED, **ident, was=item.get("status"), reason=reason)
    return run.finish("ok")
