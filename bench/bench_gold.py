"""Gold export speed: the vectorised writer against a baseline that follows Qlib's ``dump_bin.py dump_all``.

Both read the same silver table from DuckDB and write the same provider dir, single process (the CI
machine has two cores shared by everything). The baseline is ``dump_all``'s per-symbol algorithm: split
by symbol, drop duplicate dates, reindex each symbol's frame to its slice of the calendar, find the
start index with ``list.index``, then ``np.hstack([index, values]).astype("<f").tofile(...)`` per
field. The two outputs must be byte-identical.

Scale: ``QM_BENCH_GOLD_TICKERS`` (default 2000) and ``QM_BENCH_GOLD_YEARS`` (default 5).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from loaders import calendar as nyse
from loaders.gold.exporter import DAILY_FIELDS, DEFAULT_FEATURES, export_duckdb_file
from loaders.gold.symbols import feature_dir_name, to_qlib_symbol
from loaders.gold.synthetic import daily_table, write_silver

END = dt.date(2025, 10, 31)
SHM = "/dev/shm"


def baseline_dump_all(db: Path, root: Path, features: tuple[str, ...]) -> None:
    """Qlib ``dump_all``'s per-symbol reindex-and-tofile, fed from the silver table instead of CSV files."""
    fields = [*DAILY_FIELDS, *features]
    columns = ", ".join(
        f'"{c}" as "{f}"' for f, c in zip(fields, [*DAILY_FIELDS.values(), *features], strict=True)
    )
    con = duckdb.connect(str(db), read_only=True)
    df = con.execute(
        f"select ticker, session_date as date, {columns} from fct_stock_features_daily order by ticker, session_date"
    ).df()
    con.close()
    df["date"] = pd.to_datetime(df["date"])
    days = nyse.sessions(df["date"].min().date(), df["date"].max().date())
    calendar_list = [pd.Timestamp(d) for d in days]
    (root / "calendars").mkdir(parents=True)
    np.savetxt(root / "calendars" / "day.txt", [d.isoformat() for d in days], fmt="%s", encoding="utf-8")
    calendars_df = pd.DataFrame({"date": calendar_list}).astype({"date": "datetime64[ns]"})
    instruments = []
    for ticker, frame in df.groupby("ticker", sort=True):
        frame = frame.drop_duplicates("date")
        symbol = to_qlib_symbol(str(ticker))
        begin, end = frame["date"].min(), frame["date"].max()
        instruments.append(f"{symbol}\t{begin:%Y-%m-%d}\t{end:%Y-%m-%d}")
        cal = calendars_df[(calendars_df["date"] >= begin) & (calendars_df["date"] <= end)].set_index("date")
        aligned = frame.set_index("date").reindex(cal.index)
        date_index = calendar_list.index(aligned.index.min())
        folder = root / "features" / feature_dir_name(symbol)
        folder.mkdir(parents=True, exist_ok=True)
        for field in fields:
            np.hstack([date_index, aligned[field]]).astype("<f").tofile(str(folder / f"{field}.day.bin"))
    (root / "instruments").mkdir(parents=True)
    np.savetxt(root / "instruments" / "all.txt", instruments, fmt="%s", encoding="utf-8")


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def run() -> dict[str, Any]:
    tickers = int(os.environ.get("QM_BENCH_GOLD_TICKERS", "2000"))
    years = float(os.environ.get("QM_BENCH_GOLD_YEARS", "5"))
    start = END - dt.timedelta(days=round(365.25 * years))
    # RAM-backed by default so the numbers compare the writers, not the disk's file-creation cost
    # (creating 20,000 files on a busy disk takes 10-40 s whichever writer asks)
    parent = os.environ.get("QM_BENCH_GOLD_DIR") or (SHM if os.path.isdir(SHM) else None)
    work = Path(tempfile.mkdtemp(prefix="bench_gold_", dir=parent))
    try:
        db = work / "silver.duckdb"
        daily = daily_table(tickers, start, END, seed=1)
        write_silver(db, daily)
        rows = daily.num_rows
        del daily

        nyse.sessions(start, END)  # load the exchange calendar once, outside both timings
        t0, c0 = time.perf_counter(), time.process_time()
        baseline_dump_all(db, work / "baseline", DEFAULT_FEATURES)
        baseline_s, baseline_cpu = time.perf_counter() - t0, time.process_time() - c0

        t0, c0 = time.perf_counter(), time.process_time()
        stats = export_duckdb_file(db, work / "ours", features=DEFAULT_FEATURES, full=True, minute=False)
        ours_s, ours_cpu = time.perf_counter() - t0, time.process_time() - c0

        # a re-run with nothing new: change detection only (hash every ticker, write nothing)
        t0, c0 = time.perf_counter(), time.process_time()
        export_duckdb_file(db, work / "ours", features=DEFAULT_FEATURES, minute=False)
        noop_s, noop_cpu = time.perf_counter() - t0, time.process_time() - c0

        ours, base = _tree(work / "ours"), _tree(work / "baseline")
        identical = ours == base
        differing = sorted(k for k in set(ours) | set(base) if ours.get(k) != base.get(k))
        files = sum(1 for k in ours if k.endswith(".bin"))
        return {
            "title": f"gold export: {tickers} tickers x {years:g} years ({rows:,} rows, {files:,} files)",
            "rows": [
                {
                    "writer": "dump_all baseline (per-symbol reindex + tofile)",
                    "wall_s": baseline_s,
                    "cpu_s": baseline_cpu,
                },
                {"writer": "quantmini vectorised (full export)", "wall_s": ours_s, "cpu_s": ours_cpu},
                {"writer": "quantmini incremental, nothing changed", "wall_s": noop_s, "cpu_s": noop_cpu},
            ],
            "tickers": tickers,
            "years": years,
            "silver_rows": rows,
            "feature_files": files,
            "symbols": stats[0].symbols,
            "baseline_seconds": round(baseline_s, 3),
            "export_seconds": round(ours_s, 3),
            "speedup": round(baseline_s / ours_s, 1),
            "speedup_cpu": round(baseline_cpu / ours_cpu, 1),
            "byte_identical": identical,
            "work_dir": str(work.parent),
            "notes": [
                "speedup target: >= 20x at 2000 tickers x 5 years, outputs byte-identical",
                "speedup = wall-clock ratio; speedup_cpu = ratio of process CPU time (steadier on a shared machine)",
                *([f"differing files: {differing[:5]}"] if differing else []),
            ],
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
