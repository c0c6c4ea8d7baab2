"""`quantmini cleanup`: reclaim landing space once bronze holds the data, and retire old bronze sessions.

Landing files are byte copies of what Polygon served; after the load they only serve re-parsing, so
those older than N days (by modification time, i.e. when downloaded) can go. Dry run by default;
bronze is only touched with an explicit `--bronze`, and then by session date.

Retention keeps history (docs/operations.md, "Retention"): the incremental silver marts keep the rows
of sessions that leave bronze, and so does the daily Qlib provider built from them. Before removing a
bronze session, cleanup checks what would not keep it and refuses, naming it:
- a session that silver has not been built from yet (its rows would exist nowhere);
- a `stocks_minute` session in the 1min Qlib provider, which is written from the minute bars
  themselves, so the next build would drop it from gold.
`--allow-history-loss` removes them anyway.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loaders.config import Settings, load_settings
from loaders.datasets import FLATFILE_DATASETS, spec
from loaders.ops.inventory import session_partitions


@dataclass
class CleanupPlan:
    landing_files: list[Path] = field(default_factory=list)
    landing_bytes: int = 0
    bronze_partitions: list[Path] = field(default_factory=list)
    bronze_bytes: int = 0
    # dataset -> the session dates whose bronze partitions the plan removes
    bronze_sessions: dict[str, list[dt.date]] = field(default_factory=dict)


def plan_cleanup(
    settings: Settings,
    keep_days: int,
    *,
    bronze: bool = False,
    now: float | None = None,
    datasets: Sequence[str] | None = None,
) -> CleanupPlan:
    """Landing files last modified more than `keep_days` ago; bronze session folders dated before the cutoff."""
    now = time.time() if now is None else now
    cutoff = now - keep_days * 86400
    plan = CleanupPlan()
    if settings.landing_dir.is_dir():
        for path in sorted(settings.landing_dir.rglob("*")):
            if path.is_file() and not path.is_symlink():
                st = path.stat()
                if st.st_mtime < cutoff:
                    plan.landing_files.append(path)
                    plan.landing_bytes += st.st_size
    if bronze:
        cutoff_day = dt.datetime.fromtimestamp(cutoff, dt.UTC).date()
        for dataset in datasets or FLATFILE_DATASETS:
            for day, files in session_partitions(settings, dataset).items():
                if day < cutoff_day:
                    plan.bronze_partitions.append(files[0].parent)
                    plan.bronze_bytes += sum(f.stat().st_size for f in files)
                    plan.bronze_sessions.setdefault(dataset, []).append(day)
    return plan


@dataclass(frozen=True)
class Dependent:
    """Something that holds sessions the plan removes from bronze and would not keep them."""

    dataset: str
    where: str
    sessions: list[dt.date]
    reason: str

    def describe(self) -> str:
        span = f"{self.sessions[0]}..{self.sessions[-1]}" if len(self.sessions) > 1 else str(self.sessions[0])
        return f"{self.dataset}: {len(self.sessions)} session(s) {span} {self.reason} ({self.where})"


def history_dependents(settings: Settings, plan: CleanupPlan) -> tuple[list[Dependent], list[str]]:
    """What would lose sessions the plan removes (refusals), and what keeps them or holds none (notes)."""
    from loaders.ops import layers

    blockers: list[Dependent] = []
    notes: list[str] = []
    if not plan.bronze_sessions:
        return blockers, notes
    try:
        con = layers.open_silver(settings)
    except layers.SilverUnavailable:
        con = None
    try:
        for dataset, sessions in plan.bronze_sessions.items():
            relations = [name for name in spec(dataset).silver_relations if not name.startswith("stg_")]
            mart = layers.find_relation(con, tuple(relations)) if con is not None and relations else None
            if not relations:
                notes.append(
                    f"{dataset}: its silver relations are views over bronze "
                    f"({', '.join(spec(dataset).silver_relations)}); the removed sessions leave them"
                )
            elif mart is None:
                blockers.append(
                    Dependent(
                        dataset,
                        relations[0],
                        sessions,
                        "are not in silver yet (no silver relation built): run `dbt build` first",
                    )
                )
            else:
                built = layers.session_counts(con, mart, sessions)
                unbuilt = [d for d in sessions if d not in built]
                if unbuilt:
                    blockers.append(
                        Dependent(
                            dataset,
                            f"{mart.schema}.{mart.name}",
                            unbuilt,
                            "are not in silver yet: run `dbt build` (or `quantmini refresh daily`) first",
                        )
                    )
                kept = len(sessions) - len(unbuilt)
                if kept:
                    notes.append(f"{dataset}: {mart.schema}.{mart.name} keeps {kept} removed session(s)")
            if spec(dataset).gold_freq == "1min":
                in_gold = set(layers.gold_calendar_dates(settings, "1min")) & set(sessions)
                if in_gold:
                    blockers.append(
                        Dependent(
                            dataset,
                            "gold calendars/1min.txt",
                            sorted(in_gold),
                            "are in the 1min Qlib provider, which is written from bronze minute bars: "
                            "the next build would drop them from gold",
                        )
                    )
    finally:
        if con is not None:
            con.close()
    return blockers, notes


def _prune_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            path.rmdir()


def apply_cleanup(settings: Settings, plan: CleanupPlan) -> None:
    for path in plan.landing_files:
        path.unlink(missing_ok=True)
    _prune_empty_dirs(settings.landing_dir)
    for folder in plan.bronze_partitions:
        shutil.rmtree(folder, ignore_errors=True)


def cleanup_command(
    *,
    keep_days: int,
    apply: bool = False,
    bronze: bool = False,
    datasets: Sequence[str] | None = None,
    allow_history_loss: bool = False,
) -> int:
    """Exit 0 when done (or listed), 1 when bronze sessions would be lost downstream (nothing deleted)."""
    from loaders.terminal import console as make_console
    from loaders.units import human_bytes

    console = make_console()
    settings = load_settings()
    for name in datasets or ():
        if name not in FLATFILE_DATASETS:
            console.print(
                f"[red]-t {name}: cleanup --bronze removes flat-file sessions only "
                f"({', '.join(FLATFILE_DATASETS)})[/red]"
            )
            return 2
    plan = plan_cleanup(settings, keep_days, bronze=bronze, datasets=datasets)
    verb = "Deleting" if apply else "Would delete"
    console.print(
        f"{verb} {len(plan.landing_files)} landing file(s), {human_bytes(plan.landing_bytes)}, "
        f"older than {keep_days} day(s) under {settings.landing_dir}"
    )
    for path in plan.landing_files[:20]:
        console.print(f"  [dim]{path.relative_to(settings.data_dir)}[/dim]")
    if len(plan.landing_files) > 20:
        console.print(f"  [dim]... and {len(plan.landing_files) - 20} more[/dim]")
    blockers: list[Dependent] = []
    if bronze:
        console.print(
            f"[bold red]{verb} {len(plan.bronze_partitions)} bronze session partition(s), "
            f"{human_bytes(plan.bronze_bytes)}[/bold red]"
        )
        for path in plan.bronze_partitions[:20]:
            console.print(f"  [dim]{path.relative_to(settings.data_dir)}[/dim]")
        blockers, notes = history_dependents(settings, plan)
        for note in notes:
            console.print(f"  {note}")
        for blocker in blockers:
            console.print(f"[red]  would lose {blocker.describe()}[/red]")
    if blockers and not allow_history_loss:
        console.print(
            "[red]refused: nothing deleted. Build silver first, leave those datasets out with -t, "
            "or pass --allow-history-loss to delete them anyway.[/red]"
        )
        return 1
    if apply:
        apply_cleanup(settings, plan)
        console.print("[green]done[/green]")
    else:
        console.print("[yellow]dry run: nothing deleted; add --apply to delete[/yellow]")
    return 0
