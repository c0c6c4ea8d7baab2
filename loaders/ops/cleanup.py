"""`quantmini cleanup`: reclaim landing space once bronze holds the data.

Landing files are byte copies of what Polygon served; after the load they only serve re-parsing, so
those older than N days (by modification time, i.e. when downloaded) can go. Dry run by default;
bronze is only touched with an explicit `--bronze`, and then by session date.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from loaders.config import Settings, load_settings
from loaders.ops.datasets import FLATFILE_DATASETS
from loaders.ops.inventory import session_partitions


@dataclass
class CleanupPlan:
    landing_files: list[Path] = field(default_factory=list)
    landing_bytes: int = 0
    bronze_partitions: list[Path] = field(default_factory=list)
    bronze_bytes: int = 0


def plan_cleanup(
    settings: Settings, keep_days: int, *, bronze: bool = False, now: float | None = None
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
        for dataset in FLATFILE_DATASETS:
            for day, files in session_partitions(settings, dataset).items():
                if day < cutoff_day:
                    plan.bronze_partitions.append(files[0].parent)
                    plan.bronze_bytes += sum(f.stat().st_size for f in files)
    return plan


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


def cleanup_command(*, keep_days: int, apply: bool = False, bronze: bool = False) -> int:
    from rich.console import Console

    from loaders.ops.status import human_bytes

    console = Console()
    settings = load_settings()
    plan = plan_cleanup(settings, keep_days, bronze=bronze)
    verb = "Deleting" if apply else "Would delete"
    console.print(
        f"{verb} {len(plan.landing_files)} landing file(s), {human_bytes(plan.landing_bytes)}, "
        f"older than {keep_days} day(s) under {settings.landing_dir}"
    )
    for path in plan.landing_files[:20]:
        console.print(f"  [dim]{path.relative_to(settings.data_dir)}[/dim]")
    if len(plan.landing_files) > 20:
        console.print(f"  [dim]... and {len(plan.landing_files) - 20} more[/dim]")
    if bronze:
        console.print(
            f"[bold red]{verb} {len(plan.bronze_partitions)} bronze session partition(s), "
            f"{human_bytes(plan.bronze_bytes)}[/bold red]"
        )
        for path in plan.bronze_partitions[:20]:
            console.print(f"  [dim]{path.relative_to(settings.data_dir)}[/dim]")
    if apply:
        apply_cleanup(settings, plan)
        console.print("[green]done[/green]")
    else:
        console.print("[yellow]dry run: nothing deleted; add --apply to delete[/yellow]")
    return 0
