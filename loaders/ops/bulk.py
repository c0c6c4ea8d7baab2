"""`quantmini bulk` (alias `download-all`): the initial load of every dataset for its usual history.

Each dataset has its own history limit (loaders/datasets.py; minute data is far bigger than daily data,
so it goes back less far), clipped to what the flat-file bucket actually holds. Datasets load in separate
processes, a few at a time, so one dataset's failure or memory use never takes the others down.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from loaders.config import Settings, load_settings
from loaders.datasets import DATASETS, history_start, spec, start_order

#: a dataset whose ingest process is killed by a signal is resumed up to this many runs in total
CRASH_ATTEMPTS = 3


@dataclass(frozen=True)
class BulkItem:
    dataset: str
    start: dt.date | None
    end: dt.date | None
    note: str = ""

    def argv(self, max_concurrent: int) -> list[str]:
        # -X faulthandler: a crash in native code still leaves a traceback in the dataset's log
        args = [
            sys.executable,
            "-X",
            "faulthandler",
            "-m",
            "loaders.cli",
            "ingest",
            "-t",
            self.dataset,
            "--incremental",
        ]
        if self.start:
            args += ["-s", self.start.isoformat()]
        if self.end:
            args += ["-e", self.end.isoformat()]
        return [*args, "--max-concurrent", str(max_concurrent)]


@dataclass(frozen=True)
class BulkResult:
    item: BulkItem
    code: int
    seconds: float
    log: Path


def available_range(settings: Settings, prefix: str) -> tuple[dt.date, dt.date] | None:
    """First and last session file under a flat-file prefix, from a few delimiter listings (not a full scan).

    Raises StopRun (loaders.flatfiles.s3) on a systematic error: no or wrong credentials, unknown bucket,
    an endpoint that cannot be reached.
    """
    from loaders.flatfiles.s3 import Listings, make_s3_client, published_range, systematic

    client = make_s3_client(
        settings.s3_endpoint, settings.s3_access_key_id.reveal(), settings.s3_secret_access_key.reveal(), 2
    )
    try:
        return published_range(Listings(client, settings.s3_bucket), prefix)
    except Exception as exc:
        stop = systematic(exc, settings.s3_endpoint, settings.s3_bucket)
        if stop is not None:
            raise stop from None
        raise


def parse_overrides(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, hist = value.partition("=")
        if not sep:
            raise ValueError(f"--history {value!r}: expected DATASET=N[y|m|d]")
        spec(name.strip())
        history_start(hist, dt.date(2000, 1, 31))  # validates the format
        out[name.strip()] = hist.strip()
    return out


def plan_bulk(
    settings: Settings,
    datasets: list[str],
    overrides: dict[str, str],
    end: dt.date | None,
    *,
    probe: bool = True,
) -> list[BulkItem]:
    """Per dataset: [end - history, end], clipped to the bucket's first/last file for flat files."""
    items: list[BulkItem] = []
    today = dt.date.today()
    # reference data first (later datasets are keyed by it), then what the daily gold is built from
    for name in start_order(datasets):
        s = spec(name)
        history = overrides.get(name, s.history)
        if s.kind == "flatfile" and s.s3_prefix and probe:
            found = available_range(settings, s.s3_prefix)
            if found is None:
                items.append(BulkItem(name, None, None, "no files on the bucket; skipped"))
                continue
            first, last = found
            item_end = min(end or last, last)
            item_start = max(history_start(history, item_end), first) if history else first
            note = f"history {history}" + (
                f", bucket starts {first}" if history and item_start == first else ""
            )
            items.append(BulkItem(name, item_start, item_end, note))
        else:
            item_end = end or today
            item_start = history_start(history, item_end) if history else None
            items.append(
                BulkItem(name, item_start, end, f"history {history}" if history else "full snapshot")
            )
    return items


def run_bulk(
    settings: Settings, items: list[BulkItem], *, parallel: int, max_concurrent: int
) -> list[BulkResult]:
    """Run each item as a `quantmini ingest` subprocess, `parallel` at a time, with a live progress view."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    log_dir = settings.data_dir / "logs" / "bulk"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, QM_DATA_DIR=str(settings.data_dir), PYTHONUNBUFFERED="1")
    results: list[BulkResult] = []
    from loaders.terminal import console as make_console

    shown = make_console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=shown,
        disable=not shown.is_terminal,
    ) as progress:
        overall = progress.add_task(f"bulk: 0/{len(items)} datasets done", total=len(items))
        tasks = {
            item.dataset: progress.add_task(f"[dim]{item.dataset}: waiting[/dim]", total=1) for item in items
        }

        def one(item: BulkItem) -> BulkResult:
            log = log_dir / f"{item.dataset}.log"
            progress.update(
                tasks[item.dataset],
                description=f"{item.dataset}: loading {item.start or ''}..{item.end or ''}",
            )
            started = time.monotonic()
            with log.open("w") as fh:
                for attempt in range(1, CRASH_ATTEMPTS + 1):
                    code = subprocess.run(
                        item.argv(max_concurrent), stdout=fh, stderr=subprocess.STDOUT, env=env, check=False
                    ).returncode
                    if code >= 0 or attempt == CRASH_ATTEMPTS:
                        break
                    # killed by a signal (OOM killer, native crash): ingest is incremental, so resume
                    fh.write(
                        f"\n*** ingest process died from signal {-code}; resuming (attempt {attempt + 1})\n"
                    )
                    fh.flush()
                    progress.update(
                        tasks[item.dataset], description=f"{item.dataset}: resuming after signal {-code}"
                    )
            result = BulkResult(item, code, time.monotonic() - started, log)
            mark = "[green]ok[/green]" if code == 0 else f"[red]exit {code} (see {log})[/red]"
            progress.update(tasks[item.dataset], completed=1, description=f"{item.dataset}: {mark}")
            progress.advance(overall)
            progress.update(
                overall,
                description=f"bulk: {int(progress.tasks[overall].completed)}/{len(items)} datasets done",
            )
            return result

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            results = list(pool.map(one, items))
    return results


def bulk_command(
    datasets: list[str] | None,
    *,
    skip: list[str],
    history: list[str],
    end: dt.date | None,
    parallel: int = 2,
    max_concurrent: int = 4,
    dry_run: bool = False,
) -> int:
    """0 when every dataset loaded, 1 when any failed, 2 on bad input."""
    from rich.table import Table

    from loaders.flatfiles.s3 import StopRun
    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    try:
        overrides = parse_overrides(history)
        names = [n for n in (datasets or list(DATASETS)) if n not in set(skip)]
        items = plan_bulk(settings, names, overrides, end)
    except ValueError as exc:
        console.print(f"[red]bulk: {exc}[/red]")
        return 2
    except StopRun as exc:
        console.print(f"[red]bulk: {settings.redact(exc.message)}[/red]")
        return exc.code
    except Exception as exc:
        console.print(f"[red]bulk: cannot list the flat-file bucket: {settings.redact(str(exc))}[/red]")
        return 1
    table = Table(title="Bulk load plan")
    for col in ("dataset", "start", "end", "note"):
        table.add_column(col)
    for item in items:
        table.add_row(item.dataset, str(item.start or "—"), str(item.end or "latest"), item.note)
    console.print(table)
    runnable = [i for i in items if not i.note.endswith("skipped")]
    if dry_run or not runnable:
        return 0
    results = run_bulk(settings, runnable, parallel=parallel, max_concurrent=max_concurrent)
    failed = [r for r in results if r.code != 0]
    for r in results:
        console.print(
            f"{r.item.dataset}: {'ok' if r.code == 0 else f'exit {r.code}'} in {r.seconds:.1f}s (log {r.log})"
        )
    if failed:
        console.print(
            f"[red]{len(failed)} dataset(s) failed; rerun `quantmini bulk` (it is incremental) or `quantmini retry-failed`[/red]"
        )
        return 1
    return 0
