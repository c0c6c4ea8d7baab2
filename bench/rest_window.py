"""`make bench-rest-window`: CPU of the dividends ingest after 1 and after 5 years of history, listed
whole (what `refresh daily` ran before, and what `refresh weekly` and a plain `ingest` still run) and over
the daily refresh's trailing window (`ingest -t dividends -s <window start>`, as `refresh daily` runs it).

Per history length: a sandbox of QM_WINDOW_TICKERS tickers (default 2,000) whose clock stands on the
last session before today, with the given years of history behind it (dividends declared 21 days ahead
of their ex-date, so the listing holds future ex-dates too); one whole load into a fresh lake; then
QM_WINDOW_REPEATS times (default 3): advance the clock one session, one whole listing, one windowed
listing. Each is a whole `quantmini` process; CPU is user + system from wait4 (the process and its
children), the sandbox runs in its own process. Prints a table and writes
`bench/results/rest_window.json`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.measure import BIN, ROOT, Sandbox, run_measured

TICKERS = int(os.environ.get("QM_WINDOW_TICKERS", "2000"))
REPEATS = int(os.environ.get("QM_WINDOW_REPEATS", "3"))
YEARS = tuple(int(y) for y in os.environ.get("QM_WINDOW_YEARS", "1,5").split(","))


def _bronze_rows(data: Path) -> int:
    import duckdb

    glob = data / "bronze" / "dividends" / "*" / "*.parquet"
    return int(duckdb.sql(f"select count(*) from read_parquet('{glob}')").fetchone()[0])  # type: ignore[index]


def _point(work: Path, years: int, base_env: dict[str, str]) -> dict[str, Any]:
    from loaders import calendar
    from loaders.rest import commands, settings

    today = dt.datetime.now(dt.UTC).date()
    clock = calendar.sessions(today - dt.timedelta(days=10), today - dt.timedelta(days=1))[-1]
    start = settings.years_before(clock, years)
    end = clock + dt.timedelta(days=60)
    sandbox = Sandbox(
        work,
        [
            "--port",
            "0",
            "--tickers",
            str(TICKERS),
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--today",
            clock.isoformat(),
            "--option-underlyings",
            "0",
            "--contracts-per-underlying",
            "2",
            "--no-minute",
        ],
        base_env,
    )
    try:
        data = work / f"lake-{years}y"
        env = {**base_env, **sandbox.env, "QM_DATA_DIR": str(data), "DLT_DATA_DIR": str(data / "dlt")}
        log = work / f"ingest-{years}y.log"
        quantmini = str(BIN / "quantmini")
        first = run_measured(f"{years}y first load", [quantmini, "ingest", "-t", "dividends"], env, log)
        assert first.exit_code == 0, f"first load failed; see {log}"
        whole, window = [], []
        window_start = None
        for _ in range(REPEATS):
            sandbox.advance(1)
            m = run_measured(f"{years}y whole", [quantmini, "ingest", "-t", "dividends"], env, log)
            assert m.exit_code == 0, f"whole listing failed; see {log}"
            whole.append(m)
            window_start = commands.refresh_window_start(
                "dividends", data / "runs", data / "bronze", dt.datetime.now(dt.UTC).date()
            )
            assert window_start is not None, "no complete listing recorded"
            argv = [quantmini, "ingest", "-t", "dividends", "-s", window_start.isoformat()]
            m = run_measured(f"{years}y window", argv, env, log)
            assert m.exit_code == 0, f"windowed listing failed; see {log}"
            window.append(m)
        return {
            "history": f"{years}y",
            "tickers": TICKERS,
            "bronze rows": _bronze_rows(data),
            "window from": window_start.isoformat() if window_start else "",
            "first load cpu": first.cpu_s,
            "whole cpu (median)": statistics.median(m.cpu_s for m in whole),
            "window cpu (median)": statistics.median(m.cpu_s for m in window),
            "whole wall (median)": statistics.median(m.wall_s for m in whole),
            "window wall (median)": statistics.median(m.wall_s for m in window),
            "window rss MiB (max)": max(m.peak_rss_mib for m in window),
        }
    finally:
        sandbox.stop()


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="qm-rest-window-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QM_", "DLT_", "POLYGON_", "MASSIVE_"))}
    env["QM_PROGRESS_SECONDS"] = "3600"
    rows = []
    try:
        for years in YEARS:
            print(f"{years} year(s) of history, {TICKERS} tickers", flush=True)
            rows.append(_point(work, years, env))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(rows) >= 2:
        for kind in ("whole", "window"):
            ratio = rows[-1][f"{kind} cpu (median)"] / rows[0][f"{kind} cpu (median)"]
            print(f"{kind}: {rows[-1]['history']}/{rows[0]['history']} CPU ratio {ratio:.2f}")
    for row in rows:
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}))
    out = ROOT / "bench" / "results" / "rest_window.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
