"""Backfill: load a date range, or the ranges of a gaps file, in calendar-month chunks.

Chunks keep each ingest run small enough to retry on its own and to show progress on multi-year
ranges; a failed chunk is reported and the others still run.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loaders.config import load_settings
from loaders.datasets import spec
from loaders.dates import range_error
from loaders.ops.inventory import iter_months

IngestFn = Callable[..., int]


@dataclass(frozen=True)
class Chunk:
    dataset: str
    start: dt.date
    end: dt.date


@dataclass(frozen=True)
class ChunkResult:
    chunk: Chunk
    code: int
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.code == 0 and self.error is None


def plan(dataset: str, ranges: list[tuple[dt.date, dt.date]]) -> list[Chunk]:
    """Split each range at month boundaries; overlapping or adjacent input ranges are merged first."""
    merged: list[list[dt.date]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + dt.timedelta(days=1):
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [Chunk(dataset, a, b) for lo, hi in merged for a, b in iter_months(lo, hi)]


def run_chunks(
    chunks: list[Chunk],
    *,
    incremental: bool,
    max_concurrent: int,
    ingest: IngestFn | None = None,
    show_progress: bool = True,
) -> list[ChunkResult]:
    """Ingest every chunk in order, with a progress bar; exceptions become failed results, not crashes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from loaders.terminal import console as make_console

    # the chunks' ingests draw their own progress on this (shared) console, nested under this bar
    progress_console = make_console(stderr=True)

    if ingest is None:
        from loaders.ops.runner import ingest as default_ingest

        ingest = default_ingest
    redact = load_settings().redact
    results: list[ChunkResult] = []
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=progress_console,
        disable=not (show_progress and progress_console.is_terminal),
    ) as progress:
        task = progress.add_task("backfill", total=len(chunks))
        for chunk in chunks:
            progress.update(task, description=f"{chunk.dataset} {chunk.start}..{chunk.end}")
            started = time.monotonic()
            try:
                code = int(
                    ingest(
                        chunk.dataset,
                        chunk.start,
                        chunk.end,
                        incremental=incremental,
                        max_concurrent=max_concurrent,
                    )
                )
                error = None
            except Exception as exc:  # one bad month must not stop the others
                code, error = 1, redact(f"{type(exc).__name__}: {exc}")
            results.append(ChunkResult(chunk, code, time.monotonic() - started, error))
            progress.advance(task)
    return results


def backfill_command(
    dataset: str | None,
    start: dt.date | None,
    end: dt.date | None,
    gaps_file: Path | None,
    *,
    incremental: bool | None = None,
    max_concurrent: int = 4,
    build: bool = True,
    dbt_select: str | None = None,
) -> int:
    """`quantmini backfill`: 0 when every chunk (and the rebuild) succeeded, 1 on a failure, 2 on bad input."""
    from rich.table import Table

    from loaders.ops.gaps import read_gaps_file
    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    if (gaps_file is None) == (start is None and end is None):
        console.print("[red]backfill: give either -s/-e or --gaps-file (not both)[/red]")
        return 2
    needs_rebuild = False
    chunks: list[Chunk] = []
    if gaps_file is not None:
        try:
            entries = read_gaps_file(gaps_file)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            return 2
        if dataset:
            entries = [e for e in entries if e.dataset == dataset]
            if not entries:
                console.print(f"[yellow]{gaps_file} has no entry for {dataset}; nothing to do.[/yellow]")
                return 0
        for entry in entries:
            chunks += plan(entry.dataset, entry.ranges)
            needs_rebuild |= entry.needs_rebuild
        # the ranges are sessions bronze lacks: replace them outright rather than trusting load state
        mode_incremental = False if incremental is None else incremental
    else:
        if dataset is None or start is None or end is None:
            console.print("[red]backfill: -t, -s and -e are all required without --gaps-file[/red]")
            return 2
        if (wrong := range_error(start, end)) is not None:
            console.print(f"[red]backfill: {wrong}[/red]")
            return 2
        spec(dataset)
        chunks = plan(dataset, [(start, end)])
        mode_incremental = True if incremental is None else incremental
    if not chunks and not needs_rebuild:
        console.print("[green]Nothing to backfill.[/green]")
        return 0
    console.print(
        f"Backfilling {len(chunks)} chunk(s) ({'incremental' if mode_incremental else 'full replace'}) "
        f"into {settings.bronze_dir}"
    )
    results = run_chunks(chunks, incremental=mode_incremental, max_concurrent=max_concurrent)
    table = Table(title="Backfill")
    for col in ("dataset", "chunk", "result", "seconds"):
        table.add_column(col)
    for r in results:
        status = "[green]ok[/green]" if r.ok else f"[red]failed ({r.error or f'exit {r.code}'})[/red]"
        table.add_row(r.chunk.dataset, f"{r.chunk.start}..{r.chunk.end}", status, f"{r.seconds:.1f}")
    if results:
        console.print(table)
    failed = [r for r in results if not r.ok]
    if build and not failed and (results or needs_rebuild) and settings.duckdb_path.exists():
        from loaders.ops.runner import build_downstream

        console.print("Rebuilding silver (dbt build) and gold ...")
        outcome = build_downstream(settings, select=dbt_select)
        if not outcome.ok:
            console.print(
                f"[red]rebuild failed: {outcome.dbt.message or outcome.dbt.failures or outcome.gold_code}[/red]"
            )
            return 1
        console.print(f"[green]silver and gold rebuilt in {outcome.dbt.seconds:.1f}s (dbt)[/green]")
    elif build and not settings.duckdb_path.exists():
        console.print(
            "[dim]No silver database yet: skipping dbt build (run `dbt build` or `quantmini refresh`).[/dim]"
        )
    return 1 if failed else 0
