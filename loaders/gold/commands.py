"""`quantmini export qlib`: the same export `dbt build` runs, callable on its own."""

from __future__ import annotations

import logging
import os
import time

from rich.markup import escape
from rich.table import Table

from loaders.config import load_settings
from loaders.gold.exporter import export_duckdb_file, parse_features
from loaders.gold.writer import ExportError, FreqStats
from loaders.terminal import console as make_console

FEATURES_ENV = "QM_QLIB_FEATURES"


def configured_features() -> tuple[str, ...]:
    """Extra silver features to export: ``QM_QLIB_FEATURES`` (comma-separated) or the default list."""
    return parse_features(os.environ.get(FEATURES_ENV))


def summary_table(stats: list[FreqStats], seconds: float) -> Table:
    table = Table(title=f"Qlib export ({seconds:.1f} s)")
    for name in (
        "freq",
        "mode",
        "symbols",
        "calendar",
        "new",
        "append",
        "rewrite",
        "same",
        "gone",
        "files",
        "MB",
    ):
        table.add_column(name, justify="left" if name in ("freq", "mode") else "right")
    for s in stats:
        table.add_row(
            s.freq,
            s.mode,
            str(s.symbols),
            str(s.calendar_length),
            str(s.written),
            str(s.appended),
            str(s.rewritten),
            str(s.unchanged),
            str(s.removed),
            str(s.files),
            f"{s.bytes / 1e6:.1f}",
        )
    return table


def export_command(full: bool, minute: bool, target: str = "dev") -> int:
    """Export silver to ``$QM_DATA_DIR/gold/qlib``; 0 on success, 1 with a message on bad input.

    ``target`` is the dbt target that built silver: ``dev`` (the DuckDB file) or ``spark`` (the Parquet
    tables of the Spark warehouse)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # the summary table has 11 columns: a narrower terminal would abbreviate them into ellipses
    console = make_console(stderr=True, min_width=110)
    settings = load_settings()
    started = time.perf_counter()
    try:
        if target == "spark":
            from loaders.spark import export_from_warehouse

            stats = export_from_warehouse(
                settings.data_dir, settings.gold_dir, features=configured_features(), full=full, minute=minute
            )
        else:
            stats = export_duckdb_file(
                settings.duckdb_path,
                settings.gold_dir,
                features=configured_features(),
                full=full,
                minute=minute,
            )
    except (ExportError, FileNotFoundError) as exc:
        console.print(f"[red]export failed:[/red] {escape(str(exc))}")
        return 1
    console.print(summary_table(stats, time.perf_counter() - started))
    for s in stats:
        for note in s.notes:
            console.print(f"{s.freq}: {note}", markup=False)
    console.print(f"provider dir: {settings.gold_dir}", markup=False)
    return 0
