"""`quantmini refresh daily|weekly`: the unattended update. Ingest each dataset incrementally, (weekly:
detect and backfill gaps), `dbt build`, export gold, validate, and print a summary.

A failing dataset does not stop the others; the exit code names the first stage that failed so cron
mail and CI show where to look. A lock file keeps two refreshes from overlapping.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass, field
from typing import Any

from loaders.config import Settings, load_settings
from loaders.datasets import DATASETS, FLATFILE_DATASETS, spec
from loaders.ops.inventory import datasets_on_disk, session_partitions

EXIT_OK, EXIT_INGEST, EXIT_USAGE, EXIT_DBT, EXIT_GOLD, EXIT_VALIDATE, EXIT_LOCKED = 0, 1, 2, 3, 4, 5, 75
#: sessions re-checked before the last loaded one, so files Polygon republished recently are picked up
LOOKBACK_DAYS = 7


@dataclass
class Step:
    name: str
    ok: bool
    seconds: float
    detail: str = ""
    #: CPU time of the step (this process and the children it waited for), user + system
    cpu_seconds: float = 0.0


@dataclass
class RefreshSummary:
    mode: str
    steps: list[Step] = field(default_factory=list)
    code: int = EXIT_OK

    def fail(self, code: int) -> None:
        if self.code == EXIT_OK:
            self.code = code

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "exit_code": self.code,
            "steps": [
                {
                    "name": s.name,
                    "ok": s.ok,
                    "seconds": round(s.seconds, 2),
                    "cpu_seconds": round(s.cpu_seconds, 2),
                    "detail": s.detail,
                }
                for s in self.steps
            ],
        }


def select_datasets(settings: Settings, mode: str, requested: list[str] | None) -> list[str]:
    """Requested datasets, else those already in bronze; daily keeps the daily-cadence ones."""
    names = requested or datasets_on_disk(settings)
    if mode == "daily" and not requested:
        names = [n for n in names if spec(n).cadence == "daily"]
    return [n for n in DATASETS if n in names]


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def ingest_window(settings: Settings, dataset: str) -> tuple[dt.date | None, dt.date | None]:
    """Flat files: from a week before the last bronze session (or the oldest session still pending in the
    ledger) to the bucket's latest file; REST: loader's cursor (the daily refresh's splits and dividends:
    `daily_window_start`)."""
    if spec(dataset).kind != "flatfile":
        return None, None
    from loaders import runs
    from loaders.ops.bulk import available_range

    present = list(session_partitions(settings, dataset))
    found = available_range(settings, spec(dataset).s3_prefix or "")
    if found is None:
        return None, None
    first, last = found
    start = max(first, present[-1] - dt.timedelta(days=LOOKBACK_DAYS)) if present else first
    pending = [i["date"] for i in runs.pending_items(settings.runs_dir, dataset) if i.get("date")]
    if pending:  # not published when last asked for, still within the grace period: ask again
        start = min(start, max(first, dt.date.fromisoformat(min(pending))))
    return start, last


def daily_window_start(settings: Settings, dataset: str) -> dt.date | None:
    """Where the daily refresh starts listing a dataset with a `refresh_window_days` (splits, dividends):
    that many days before its last complete listing, with no end; None (the whole history) for the others
    and when no complete listing is recorded. The weekly refresh lists them whole (docs/rest.md, "Refresh
    window")."""
    if spec(dataset).refresh_window_days is None:
        return None
    from loaders.rest.commands import refresh_window_start

    return refresh_window_start(dataset, settings.runs_dir, settings.bronze_dir, _today())


def _cpu() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(summary: RefreshSummary, name: str, fn: Any) -> Any:
    started, cpu = time.monotonic(), _cpu()
    try:
        ok, detail, value = fn()
    except Exception as exc:  # a stage's crash is reported, not raised: later stages may still run
        ok, detail, value = False, f"{type(exc).__name__}: {exc}", None
    summary.steps.append(
        Step(name, ok, time.monotonic() - started, load_settings().redact(detail), _cpu() - cpu)
    )
    return ok, value


def first_changed_session(settings: Settings, before: dict[str, dict[dt.date, list[Any]]]) -> dt.date | None:
    """The earliest session whose bronze files differ from `before` (new or re-loaded), or None."""
    changed = [
        day
        for name, files_before in before.items()
        for day, files in session_partitions(settings, name).items()
        if files_before.get(day) != files
    ]
    return min(changed, default=None)


def session_test_scope(
    settings: Settings, mode: str, before: dict[str, dict[dt.date, list[Any]]]
) -> dict[str, Any]:
    """dbt vars that make a daily refresh's data tests check only the sessions it changed
    (macros/test_scope.sql); the weekly refresh checks everything."""
    if mode != "daily" or not before:
        return {}
    first = first_changed_session(settings, before)
    if first is None:  # nothing new in the session datasets: the session-grained tests have nothing to check
        latest = max((max(p, default=dt.date.min) for p in before.values()), default=dt.date.min)
        first = latest + dt.timedelta(days=1) if latest != dt.date.min else None
    if first is None:
        return {}
    scope: dict[str, Any] = {"test_sessions_from": first.isoformat()}
    # the REST datasets listed over a trailing window are tested over it (the widest); a window of 0
    # lists everything daily, and then everything is tested
    from loaders.rest.settings import refresh_window_days

    try:
        windows = [refresh_window_days(name) for name, entry in DATASETS.items() if entry.refresh_window_days]
    except ValueError:  # a bad QM_REFRESH_WINDOW_DAYS: the ingest step names it; test everything
        return scope
    if windows and all(days for days in windows):
        scope["test_window_days"] = max(windows)
    return scope


def run_refresh(
    settings: Settings,
    mode: str,
    datasets: list[str],
    *,
    max_concurrent: int = 4,
    build: bool = True,
    validate: bool = True,
    dbt_select: str | None = None,
    target: str | None = None,
) -> RefreshSummary:
    from loaders.ops import runner

    summary = RefreshSummary(mode)
    before = {name: session_partitions(settings, name) for name in datasets if name in FLATFILE_DATASETS}
    for name in datasets:

        def step(name: str = name) -> tuple[bool, str, None]:
            start, end = ingest_window(settings, name)
            if mode == "daily" and spec(name).refresh_window_days is not None:
                start = daily_window_start(settings, name)
            code = runner.ingest(name, start, end, incremental=True, max_concurrent=max_concurrent)
            whole = spec(name).kind == "rest" and spec(name).cursor is None and spec(name).dated
            window = f"{start or ('whole history' if whole else 'cursor')}..{end or 'latest'}"
            return code == 0, f"{window} exit {code}" + runner.exit_meaning(name, code), None

        ok, _ = _timed(summary, f"ingest {name}", step)
        if not ok:
            summary.fail(EXIT_INGEST)

    if mode == "weekly":
        for name in [n for n in datasets if n in FLATFILE_DATASETS and session_partitions(settings, n)]:

            def repair(name: str = name) -> tuple[bool, str, None]:
                from loaders.ops import backfill, gaps

                found = gaps.detect(settings, name, downstream=False)
                ranges = [(r.start, r.end) for r in found.missing]
                if not ranges:
                    return True, "no gaps", None
                results = backfill.run_chunks(
                    backfill.plan(name, ranges),
                    incremental=False,
                    max_concurrent=max_concurrent,
                    show_progress=False,
                )
                bad = [r for r in results if not r.ok]
                return (
                    not bad,
                    f"{len(found.missing_sessions)} missing sessions, {len(bad)} failed chunks",
                    None,
                )

            ok, _ = _timed(summary, f"gaps+backfill {name}", repair)
            if not ok:
                summary.fail(EXIT_INGEST)

    if build:

        def dbt_step() -> tuple[bool, str, Any]:
            outcome = runner.dbt_build(
                settings,
                select=dbt_select,
                target=target,
                dbt_vars=session_test_scope(settings, mode, before),
            )
            detail = "; ".join(outcome.failures[:3]) or outcome.message
            return outcome.ok, detail, outcome

        # its own name: dbt_step reads `before` (the bronze partitions) when it runs, after this line
        gold_before = runner.gold_stamp(settings)
        started = time.time()
        ok, outcome = _timed(summary, "dbt build", dbt_step)
        if not ok:
            summary.fail(EXIT_DBT)
        else:
            after = runner.gold_stamp(settings)
            if outcome.exported_gold or (after > gold_before and after >= started - 1):
                summary.steps.append(Step("gold export", True, 0.0, "written by the dbt build"))
            else:
                minute = any(spec(name).gold_freq == "1min" for name in datasets)

                def gold_step() -> tuple[bool, str, None]:
                    code = runner.gold_export(full=False, minute=minute, target=target or "dev")
                    return code == 0, f"exit {code}", None

                ok, _ = _timed(summary, "gold export", gold_step)
                if not ok:
                    summary.fail(EXIT_GOLD)

    if validate:

        def validate_step() -> tuple[bool, str, None]:
            from loaders.ops.validate import validate as run_validate

            # daily: the partitions this refresh (or anything since the last validation) changed;
            # weekly: all history
            # the silver checks read the DuckDB file; Spark silver is checked by its dbt tests
            report = run_validate(
                settings, silver=build and target != "spark", gold=build, deep=mode == "weekly"
            )
            ranked = report.errors + report.warnings
            first = ranked[0] if ranked else None
            detail = f"{len(report.errors)} error(s), {len(report.warnings)} warning(s)" + (
                f", first: {first.where}: {first.message}" if first else ""
            )
            return report.ok, detail, None

        ok, _ = _timed(summary, "validate", validate_step)
        if not ok:
            summary.fail(EXIT_VALIDATE)
    return summary


def refresh_command(
    mode: str,
    datasets: list[str] | None,
    *,
    max_concurrent: int = 4,
    build: bool = True,
    validate: bool = True,
    dbt_select: str | None = None,
    target: str | None = None,
) -> int:
    from filelock import FileLock, Timeout
    from rich.table import Table

    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    if mode not in {"daily", "weekly"}:
        console.print(f"[red]refresh: mode must be daily or weekly, got {mode!r}[/red]")
        return EXIT_USAGE
    names = select_datasets(settings, mode, datasets)
    if not names:
        console.print(
            "[red]refresh: nothing in bronze yet; run `quantmini bulk` (or `quantmini ingest`) first[/red]"
        )
        return EXIT_USAGE
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.data_dir / ".refresh.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        console.print("[yellow]refresh: another refresh holds the lock; not starting a second one[/yellow]")
        return EXIT_LOCKED
    try:
        started = dt.datetime.now(dt.UTC).replace(microsecond=0)
        console.print(f"refresh {mode}: {', '.join(names)}")
        summary = run_refresh(
            settings,
            mode,
            names,
            max_concurrent=max_concurrent,
            build=build,
            validate=validate,
            dbt_select=dbt_select,
            target=target,
        )
    finally:
        lock.release()
    table = Table(title=f"refresh {mode}: {'ok' if summary.code == 0 else f'exit {summary.code}'}")
    for col in ("step", "result", "seconds", "cpu s", "detail"):
        table.add_column(col, overflow="fold")
    for s in summary.steps:
        table.add_row(
            s.name,
            "[green]ok[/green]" if s.ok else "[red]failed[/red]",
            f"{s.seconds:.1f}",
            f"{s.cpu_seconds:.1f}",
            s.detail,
        )
    console.print(table)
    log_dir = settings.data_dir / "logs" / "refresh"
    log_dir.mkdir(parents=True, exist_ok=True)
    payload = {"started_at": started.isoformat().replace("+00:00", "Z"), **summary.to_json()}
    (log_dir / f"{started:%Y%m%dT%H%M%SZ}-{mode}.json").write_text(json.dumps(payload, indent=2) + "\n")
    return summary.code
