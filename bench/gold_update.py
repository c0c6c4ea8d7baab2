"""Cost of a daily gold update at scale: whole `export` processes on synthetic silver.

Builds synthetic `fct_stock_features_daily` (``QM_BENCH_GOLD_TICKERS`` x ``QM_BENCH_GOLD_YEARS``,
defaults 12,000 x 5) without its last session, exports it whole, adds the last session (rows carry a
later `built_at`, as an incremental dbt run writes them), then measures, each as one process: the
incremental export of that session, a re-run with nothing new, and an update after one ticker's whole
history was restated (a split). The outputs are compared with a fresh `--full` export byte for byte.

    python -m bench.gold_update [--code DIR]

``--code`` runs the export processes from another checkout (e.g. the previous version) against the
same silver; ``QM_BENCH_GOLD_DIR`` is where silver and gold go (default RAM-backed ``/dev/shm``).
Not part of `make bench`: the full-size setup takes minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import filecmp
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from bench.measure import ROOT, run_measured
from loaders.gold.synthetic import daily_table, write_silver

END = dt.date(2025, 10, 31)
SHM = "/dev/shm"
EXPORT = (
    "import sys; from pathlib import Path; from loaders.gold.exporter import export_duckdb_file; "
    "s = export_duckdb_file(Path(sys.argv[1]), Path(sys.argv[2]), full=sys.argv[3] == 'full', minute=False)[0]; "
    "print(s.mode, 'written', s.written, 'appended', s.appended, 'rewritten', s.rewritten, "
    "'unchanged', s.unchanged, 'removed', s.removed, 'files', s.files, flush=True)"
)


def _same_tree(a: Path, b: Path) -> bool:
    """Every feature, calendar and instrument file byte-identical (the manifest aside)."""
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and not p.name.startswith("."))
    other = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and not p.name.startswith("."))
    if names != other:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(n) for n in names], shallow=False)
    return not mismatch and not errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout the export processes run from")
    args = parser.parse_args()
    tickers = int(os.environ.get("QM_BENCH_GOLD_TICKERS", "12000"))
    years = float(os.environ.get("QM_BENCH_GOLD_YEARS", "5"))
    start = END - dt.timedelta(days=round(365.25 * years))
    parent = os.environ.get("QM_BENCH_GOLD_DIR") or (SHM if os.path.isdir(SHM) else None)
    work = Path(tempfile.mkdtemp(prefix="bench_gold_update_", dir=parent))
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    python = sys.executable
    log = work / "export.log"
    try:
        db = work / "silver.duckdb"
        daily = daily_table(tickers, start, END, seed=1)
        last = pc.max(daily.column("session_date")).as_py()
        older = daily.filter(pc.less(daily.column("session_date"), pa.scalar(last, pa.date32())))
        newest = daily.filter(pc.equal(daily.column("session_date"), pa.scalar(last, pa.date32())))
        rows = daily.num_rows
        del daily
        write_silver(db, older)
        del older
        con = duckdb.connect(str(db))
        con.execute("alter table main.fct_stock_features_daily add column built_at timestamp")
        con.execute("update main.fct_stock_features_daily set built_at = timestamp '2025-10-30 06:00:00'")
        con.close()
        gold = work / "gold"

        def export(step: str, mode: str, root: Path = gold) -> dict[str, object]:
            m = run_measured(step, [python, "-c", EXPORT, str(db), str(root), mode], env, log, cwd=args.code)
            if m.exit_code:
                raise SystemExit(f"{step} failed; see {log}")
            return {
                "step": step,
                "wall_s": round(m.wall_s, 2),
                "cpu_s": round(m.cpu_s, 2),
                "peak_rss_mib": round(m.peak_rss_mib),
            }

        results = [export("full export, all but the last session", "full")]
        con = duckdb.connect(str(db))
        con.register("newest", newest)
        con.execute(
            "insert into main.fct_stock_features_daily by name "
            "select *, timestamp '2025-10-31 06:00:00' as built_at from newest"
        )
        con.close()
        results.append(export("incremental: the next session", "incremental"))
        results.append(export("incremental: nothing new", "incremental"))
        # one ticker restated whole (a split re-states every earlier factor): its rows are rewritten
        con = duckdb.connect(str(db))
        victim = con.execute(
            "select ticker from main.fct_stock_features_daily group by ticker order by count(*) desc limit 1"
        ).fetchone()[0]
        con.execute(
            "update main.fct_stock_features_daily set adj_factor = adj_factor * 0.5, adj_close = adj_close * 0.5, "
            "built_at = timestamp '2025-11-01 06:00:00' where ticker = ?",
            [victim],
        )
        con.close()
        results.append(export(f"incremental: {victim} restated", "incremental"))
        results.append(export("fresh full export (reference)", "full", work / "reference"))
        identical = _same_tree(gold, work / "reference")
        summary = {
            "tickers": tickers,
            "years": years,
            "rows": rows,
            "code": str(args.code),
            "identical": identical,
        }
        print(json.dumps({"results": results, **summary}, indent=1))
        print(
            "\n".join(
                line for line in log.read_text().splitlines() if line.startswith(("full", "incremental"))
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
