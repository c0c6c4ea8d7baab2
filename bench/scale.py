"""Seed-sized lake on one machine: `make bench-scale` (not part of `make test` or `make bench`).

Everything runs as users run it, one whole `quantmini` (or `dbt`) process per step against a sandbox
served by its own process, and each step reports wall, CPU (user + system, from the kernel's rusage of
the waited process) and peak RSS (sampled over the process tree). The run:

1. serves a market of QM_SCALE_TICKERS tickers over QM_SCALE_YEARS years, clock at the end of year one;
2. loads one year of stocks_daily (+ splits, dividends), builds silver, exports gold, then runs
   QM_SCALE_REFRESHES one-session `quantmini refresh daily` (the 1-year point);
3. advances the clock to the end of the history, loads the remaining years incrementally, builds,
   exports, and runs the same refreshes again (the N-year point); their CPU ratio is the goal;
4. loads options_daily, stocks_minute and options_minute for the last sessions, then times a full
   `dbt build --full-refresh`, a full gold export and `validate --deep` over everything, and reports the
   bytes of each layer.

The refreshes call `refresh daily -t stocks_daily -t splits -t dividends --dbt-select 'staging
intermediate marts'`: the gold export then runs as the refresh's own step instead of inside `dbt build`,
so its CPU is reported separately (the work is the same `loaders.gold` export).

Knobs (environment): QM_SCALE_TICKERS (12000), QM_SCALE_YEARS (5), QM_SCALE_OPTION_SESSIONS (60),
QM_SCALE_OPTION_UNDERLYINGS (1500), QM_SCALE_CONTRACTS (4000 listed per underlying; about 1M trade a
day at the defaults), QM_SCALE_MINUTE_SESSIONS (20), QM_SCALE_OPTION_MINUTE_SESSIONS (2),
QM_SCALE_REFRESHES (2), QM_SCALE_DIR (work folder, kept; default a fresh temp folder, removed),
QM_SCALE_PORT (REST port of the sandbox, S3 on the next one; default 0 = free ports).
Results: printed, and written to bench/results/scale-<tickers>.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.measure import BIN, Measured, Sandbox, run_measured

ROOT = Path(__file__).resolve().parent.parent
RSS_GOAL_MIB = 2048
RATIO_GOAL = 1.2
END = dt.date(2025, 12, 31)
REFRESH_SELECT = "staging intermediate marts"
REFRESH_DATASETS = ("stocks_daily", "splits", "dividends")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _bytes(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run() -> dict[str, Any]:
    from loaders import calendar

    tickers = _env_int("QM_SCALE_TICKERS", 12_000)
    years = _env_int("QM_SCALE_YEARS", 5)
    option_sessions = _env_int("QM_SCALE_OPTION_SESSIONS", 60)
    underlyings = _env_int("QM_SCALE_OPTION_UNDERLYINGS", 1_500)
    contracts = _env_int("QM_SCALE_CONTRACTS", 4_000)
    minute_sessions = _env_int("QM_SCALE_MINUTE_SESSIONS", 20)
    option_minute_sessions = _env_int("QM_SCALE_OPTION_MINUTE_SESSIONS", 2)
    refreshes = max(1, _env_int("QM_SCALE_REFRESHES", 2))
    keep = os.environ.get("QM_SCALE_DIR")
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="qm-bench-scale-"))
    if (work / "data").exists():
        shutil.rmtree(work / "data")
    work.mkdir(parents=True, exist_ok=True)
    data = work / "data"
    log = work / "steps.log"

    start = dt.date(END.year - years + 1, 1, 1)
    sessions = calendar.sessions(start, END)
    one_year = len(calendar.sessions(start, dt.date(start.year, 12, 31)))
    # clock positions: end of year one (minus the refresh sessions), then the end minus the refreshes
    t1 = sessions[one_year - 1 - refreshes]
    t5_index = len(sessions) - 1 - refreshes
    steps: list[Measured] = []
    refresh_rows: list[dict[str, Any]] = []

    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("POLYGON_", "MASSIVE_", "QM_DATA_DIR"))
    }
    port = os.environ.get("QM_SCALE_PORT", "0")
    print(f"bench-scale: {tickers} tickers x {years} years, work dir {work}", flush=True)
    sandbox = Sandbox(
        work,
        [
            "--port", port,
            "--tickers", str(tickers),
            "--start", start.isoformat(),
            "--end", END.isoformat(),
            "--today", t1.isoformat(),
            "--option-underlyings", str(underlyings if option_sessions or option_minute_sessions else 0),
            "--contracts-per-underlying", str(contracts),
            "--minute",
        ],
        base_env,
    )  # fmt: skip
    env = {**base_env, **sandbox.env, "QM_DATA_DIR": str(data), "DLT_DATA_DIR": str(data / "dlt")}
    qm = str(BIN / "quantmini")

    def step(name: str, *argv: str) -> Measured:
        m = run_measured(name, [qm, *argv] if argv[0] != "dbt" else [str(BIN / "dbt"), *argv[1:]], env, log)
        steps.append(m)
        # what completed so far survives a later failure or an interrupted run
        partial = {"steps": [asdict(s) for s in steps], "refresh_rows": refresh_rows}
        (work / "partial.json").write_text(json.dumps(partial, indent=2))
        if m.exit_code not in (0,):
            raise RuntimeError(f"step {name!r} exited {m.exit_code}; see {log}")
        return m

    def refresh_point(label: str) -> None:
        for _ in range(refreshes):
            sandbox.advance(1)
            started = dt.datetime.now(dt.UTC)
            types = [a for d in REFRESH_DATASETS for a in ("-t", d)]
            m = step(f"refresh daily ({label})", "refresh", "daily", *types, "--dbt-select", REFRESH_SELECT)
            logs = sorted((data / "logs" / "refresh").glob("*-daily.json"))
            summary = json.loads(logs[-1].read_text()) if logs else {"steps": []}
            split: dict[str, list[float]] = {}
            for s in summary["steps"]:
                kind = s["name"].split(" ")[0] if not s["name"].startswith("dbt") else "dbt build"
                kind = {"ingest": "ingest", "gold": "export", "validate": "validate"}.get(kind, kind)
                wall_cpu = split.setdefault(kind, [0.0, 0.0])
                wall_cpu[0] += s["seconds"]
                wall_cpu[1] += s.get("cpu_seconds", 0.0)
            row: dict[str, Any] = {"history": label, "wall_s": m.wall_s, "cpu_s": m.cpu_s}
            for kind in ("ingest", "dbt build", "export", "validate"):
                wall, cpu = split.get(kind, [0.0, 0.0])
                row[f"{kind} wall"] = wall
                row[f"{kind} cpu"] = cpu
            row["rss_MiB"] = m.peak_rss_mib
            row["at"] = started.isoformat(timespec="seconds")
            refresh_rows.append(row)

    try:
        started = time.perf_counter()
        # ---- one year -------------------------------------------------------------------------------
        step(
            "load stocks_daily (year 1)",
            "ingest",
            "-t",
            "stocks_daily",
            "--full",
            "-s",
            start.isoformat(),
            "-e",
            t1.isoformat(),
        )
        step("load splits", "ingest", "-t", "splits")
        step("load dividends", "ingest", "-t", "dividends")
        step(
            "dbt build (year 1)",
            "dbt",
            "build",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT),
            "--target-path",
            str(data / "dbt" / "target"),
            "--log-path",
            str(data / "dbt" / "logs"),
            "--quiet",
        )
        step("gold export --full (year 1)", "export", "qlib", "--full")
        step("validate (year 1, first: all)", "validate")
        refresh_point("1y")

        # ---- the rest of the history ------------------------------------------------------------
        t1_index = sessions.index(t1) + refreshes
        sandbox.advance(t5_index - t1_index)
        t5 = sessions[t5_index]
        step(
            f"load stocks_daily (years 2-{years})",
            "ingest",
            "-t",
            "stocks_daily",
            "-s",
            start.isoformat(),
            "-e",
            t5.isoformat(),
        )
        step("load splits (incremental)", "ingest", "-t", "splits")
        step("load dividends (incremental)", "ingest", "-t", "dividends")
        step(
            f"dbt build (years 2-{years}, incremental)",
            "dbt",
            "build",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT),
            "--target-path",
            str(data / "dbt" / "target"),
            "--log-path",
            str(data / "dbt" / "logs"),
            "--quiet",
        )
        step(f"gold export (years 2-{years})", "export", "qlib")
        step(f"validate (years 2-{years})", "validate")
        refresh_point(f"{years}y")

        # ---- the other flat-file datasets over the last sessions -----------------------------------
        last = sessions[-1]
        for dataset, count in (
            ("options_daily", option_sessions),
            ("stocks_minute", minute_sessions),
            ("options_minute", option_minute_sessions),
        ):
            if count:
                first = sessions[-count]
                step(
                    f"load {dataset} ({count} sessions)",
                    "ingest",
                    "-t",
                    dataset,
                    "--full",
                    "-s",
                    first.isoformat(),
                    "-e",
                    last.isoformat(),
                )
        initial_wall = time.perf_counter() - started
        step(
            "full dbt build --full-refresh (everything)",
            "dbt",
            "build",
            "--full-refresh",
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT),
            "--target-path",
            str(data / "dbt" / "target"),
            "--log-path",
            str(data / "dbt" / "logs"),
            "--quiet",
        )
        step("gold export --full (day + 1min)", "export", "qlib", "--full")
        step("validate --deep (everything)", "validate", "--deep")
    finally:
        sandbox.stop()
    sizes = {
        "landing_bytes": _bytes(data / "landing"),
        "bronze_bytes": _bytes(data / "bronze"),
        "silver_bytes": _bytes(data / "quantmini.duckdb"),
        "gold_bytes": _bytes(data / "gold"),
    }
    for name in list(sizes):
        sizes[name.replace("_bytes", "_GB")] = round(sizes.pop(name) / 1e9, 3)
    bronze_rows = {}
    try:
        from loaders.config import load_settings
        from loaders.ops.inventory import summarize

        os.environ["QM_DATA_DIR"] = str(data)
        settings = load_settings()
        for dataset in ("stocks_daily", "options_daily", "stocks_minute", "options_minute"):
            bronze_rows[f"{dataset}_rows"] = summarize(settings, dataset).rows
    except Exception as exc:  # the sizes are informative; a failure here must not lose the timings
        bronze_rows["rows_error"] = str(exc)

    def best(label: str) -> dict[str, Any]:
        rows = [r for r in refresh_rows if r["history"] == label]
        return min(rows, key=lambda r: r["cpu_s"])

    one, many = best("1y"), best(f"{years}y")
    ratio_cpu = many["cpu_s"] / one["cpu_s"] if one["cpu_s"] else 0.0
    ratio_wall = many["wall_s"] / one["wall_s"] if one["wall_s"] else 0.0
    peak = max(s.peak_rss_mib for s in steps)
    result: dict[str, Any] = {
        "title": f"scale: {tickers} tickers x {years} years ({len(sessions)} sessions)",
        "rows": [{k: v for k, v in asdict(s).items() if k != "detail"} for s in steps],
        "refresh_rows": refresh_rows,
        "tickers": tickers,
        "years": years,
        "sessions": len(sessions),
        "option_sessions": option_sessions,
        "option_underlyings": underlyings,
        "contracts_per_underlying": contracts,
        "minute_sessions": minute_sessions,
        "option_minute_sessions": option_minute_sessions,
        **bronze_rows,
        "initial_load_wall_s": round(sum(s.wall_s for s in steps if s.step.startswith("load ")), 1),
        "initial_load_cpu_s": round(sum(s.cpu_s for s in steps if s.step.startswith("load ")), 1),
        "elapsed_to_last_load_s": round(initial_wall, 1),
        **sizes,
        "refresh_cpu_ratio": round(ratio_cpu, 2),
        "refresh_cpu_ratio_goal": f"<= {RATIO_GOAL}",
        "refresh_wall_ratio": round(ratio_wall, 2),
        "peak_rss_mib": round(peak, 1),
        "peak_rss_goal": f"< {RSS_GOAL_MIB} MiB",
        "meets_ratio_goal": ratio_cpu <= RATIO_GOAL,
        "meets_rss_goal": peak < RSS_GOAL_MIB,
        "load_avg_at_end": round(os.getloadavg()[0], 2),
        "work_dir": str(work),
        "notes": [
            f"refresh ratio: best-of-{refreshes} CPU of a one-session `refresh daily` after {years} years "
            "over the same after 1 year",
            f"refresh datasets: {', '.join(REFRESH_DATASETS)}; --dbt-select '{REFRESH_SELECT}' so the "
            "gold export is its own step",
        ],
    }
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def render(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=200)
    from bench.__main__ import render as render_result

    render_result(console, "scale", {k: v for k, v in result.items() if k != "refresh_rows"})
    table = Table(title="one-session refresh daily: wall / CPU seconds per stage")
    rows = result["refresh_rows"]
    columns = [c for c in rows[0] if c != "at"] if rows else []
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in columns))
    console.print(table)


def main() -> int:
    result = run()
    render(result)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"scale-{result['tickers']}.json").write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["meets_ratio_goal"] and result["meets_rss_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
