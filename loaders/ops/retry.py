"""`quantmini retry-failed`: re-run what the run ledger says failed and has not succeeded since.

Flat-file failures name their session date, so exactly those dates are re-loaded (as a full replace,
grouped into consecutive ranges). REST failures name pages of a listing; a page cannot be fetched on
its own (cursors expire), so the dataset's failed run is repeated over its own date range.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loaders import calendar
from loaders.config import Settings, load_settings
from loaders.datasets import spec


@dataclass(frozen=True)
class RetryPlan:
    dataset: str
    ranges: list[tuple[dt.date | None, dt.date | None]]
    items: int
    incremental: bool


def plan_retries(settings: Settings, datasets: list[str] | None = None) -> list[RetryPlan]:
    from loaders import runs
    from loaders.ops.gaps import to_ranges

    failures = runs.outstanding_failures(settings.runs_dir)
    by_dataset: dict[str, list[dict]] = {}
    for item in failures:
        if datasets and item["dataset"] not in datasets:
            continue
        by_dataset.setdefault(item["dataset"], []).append(item)
    plans: list[RetryPlan] = []
    for name, items in sorted(by_dataset.items()):
        try:
            kind = spec(name).kind
        except ValueError:
            continue
        dates = sorted({dt.date.fromisoformat(i["date"]) for i in items if i.get("date")})
        if kind == "flatfile" and dates:
            expected = calendar.sessions(dates[0], dates[-1])
            ranges = [(r.start, r.end) for r in to_ranges(dates, expected)]
            plans.append(RetryPlan(name, ranges, len(items), incremental=False))
        else:
            # the failed run's own window, from its recorded arguments
            run_ids = {i["run_id"] for i in items}
            windows: set[tuple[dt.date | None, dt.date | None]] = set()
            for run in runs.read_runs(settings.runs_dir, name):
                if run.get("run_id") in run_ids:
                    args = run.get("args") or {}
                    lo, hi = args.get("start"), args.get("end")
                    windows.add(
                        (dt.date.fromisoformat(lo) if lo else None, dt.date.fromisoformat(hi) if hi else None)
                    )
            plans.append(
                RetryPlan(name, sorted(windows, key=str) or [(None, None)], len(items), incremental=True)
            )
    return plans


def retry_failed_command(
    datasets: list[str] | None,
    *,
    max_concurrent: int = 4,
    dry_run: bool = False,
    build: bool = True,
    dbt_select: str | None = None,
) -> int:
    from rich.table import Table

    from loaders.ops import runner
    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    plans = plan_retries(settings, datasets)
    if not plans:
        console.print("[green]No outstanding failures in the run ledger.[/green]")
        return 0
    table = Table(title="Outstanding failures")
    for col in ("dataset", "failed items", "retry", "mode"):
        table.add_column(col)
    for p in plans:
        ranges = ", ".join(f"{a or 'cursor'}..{b or 'latest'}" if a != b else str(a) for a, b in p.ranges)
        table.add_row(p.dataset, str(p.items), ranges, "incremental" if p.incremental else "full replace")
    console.print(table)
    if dry_run:
        return 0
    failed = 0
    for p in plans:
        for lo, hi in p.ranges:
            try:
                code = runner.ingest(
                    p.dataset, lo, hi, incremental=p.incremental, max_concurrent=max_concurrent
                )
            except Exception as exc:
                code = 1
                console.print(f"[red]{p.dataset} {lo}..{hi}: {settings.redact(str(exc))}[/red]")
            if code != 0:
                failed += 1
            console.print(
                f"{p.dataset} {lo or 'cursor'}..{hi or 'latest'}: {'ok' if code == 0 else f'exit {code}'}"
            )
    if build and not failed and settings.duckdb_path.exists():
        outcome = runner.build_downstream(settings, select=dbt_select)
        if not outcome.ok:
            console.print(f"[red]rebuild failed: {outcome.dbt.message or outcome.dbt.failures}[/red]")
            return 1
    still = plan_retries(settings, datasets)
    if still:
        console.print(
            f"[yellow]{sum(p.items for p in still)} item(s) still failing; see `quantmini status`[/yellow]"
        )
    return 1 if failed or still else 0


def dismiss_command(
    datasets: list[str] | None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    reason: str = "dismissed by hand",
) -> int:
    """`quantmini retry-failed --dismiss`: clear failed (and pending) ledger items for good, e.g. files
    Polygon will never publish; optionally only those dated within [start, end]. Exit code 0."""
    from rich.table import Table

    from loaders import runs
    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()

    def chosen(item: dict) -> bool:
        if datasets and item["dataset"] not in datasets:
            return False
        if item["status"] not in runs.FAILED_STATUSES | {runs.PENDING}:
            return False
        if start is None and end is None:
            return True
        if not item.get("date"):
            return False  # a REST page has no date to match a range
        day = dt.date.fromisoformat(item["date"])
        return (start is None or day >= start) and (end is None or day <= end)

    by_dataset: dict[str, list[dict]] = {}
    for item in runs.latest_items(settings.runs_dir):
        if chosen(item):
            by_dataset.setdefault(item["dataset"], []).append(item)
    if not by_dataset:
        console.print("[green]Nothing to dismiss: no failed or pending items match.[/green]")
        return 0
    table = Table(title="Dismissed ledger items")
    for col in ("dataset", "items", "first", "last"):
        table.add_column(col)
    for name, items in sorted(by_dataset.items()):
        runs.dismiss(settings.runs_dir, name, items, reason)
        ids = sorted(str(runs.item_id(i)) for i in items)
        table.add_row(name, str(len(items)), ids[0], ids[-1])
    console.print(table)
    console.print(f"reason recorded in the ledger: {reason!r}")
    return 0
