"""Silver build time: a full `dbt build` and a one-session incremental `dbt build` over sandbox bronze.

Bronze is written straight from the sandbox market's day tables in the bronze layout (no S3, no dlt),
so the numbers are dbt + DuckDB only. The incremental steps add one session each: a `dbt build`
(models and every test, which re-checks whole tables), then a `dbt run` (models only). Minute bars are written for the last sessions only (a full
5-year minute history of 500 tickers is about 250 million rows, beyond a CI machine); days without
minute bars take the daily VWAP fallback. Both builds run every model, data test and unit test of the
silver selection, in-process through dbtRunner.

Scale: ``QM_BENCH_SILVER_TICKERS`` (default 500), ``QM_BENCH_SILVER_YEARS`` (default 5),
``QM_BENCH_SILVER_MINUTE_SESSIONS`` (default 10).
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

from loaders.sandbox.market import Market, MarketConfig
from tests.dbt_fixtures import SILVER_SELECTION, run_dbt, write_market_sessions, write_rest_records

END = dt.date(2025, 12, 31)


def _counts(data_dir: Path) -> dict[str, int]:
    with duckdb.connect(str(data_dir / "quantmini.duckdb"), read_only=True) as con:
        return {
            table: con.execute(f"select count(*) from main.{table}").fetchone()[0]
            for table in (
                "fct_stock_features_daily",
                "fct_stock_minute_features_daily",
                "fct_option_contracts_daily",
                "fct_options_underlying_daily",
            )
        }


def run() -> dict[str, Any]:
    tickers = int(os.environ.get("QM_BENCH_SILVER_TICKERS", "500"))
    years = int(os.environ.get("QM_BENCH_SILVER_YEARS", "5"))
    minute_sessions = int(os.environ.get("QM_BENCH_SILVER_MINUTE_SESSIONS", "10"))
    market = Market(MarketConfig(seed=3, start=dt.date(END.year - years + 1, 1, 1), end=END, tickers=tickers))
    sessions = market.sessions
    history, second_last, last = sessions[:-2], sessions[-2], sessions[-1]
    work = Path(tempfile.mkdtemp(prefix="qm-bench-silver-"))
    try:
        started = time.perf_counter()
        write_market_sessions(work, market, history, minute_days=history[-(minute_sessions - 1) :])
        write_rest_records(work, "splits", market.splits())
        write_rest_records(work, "dividends", market.dividends())
        write_rest_records(work, "options_contracts", market.options_contracts())
        bronze_seconds = time.perf_counter() - started

        started = time.perf_counter()
        run_dbt(["build", *SILVER_SELECTION], work, work / "dbt")
        full_seconds = time.perf_counter() - started
        rows_full = _counts(work)

        write_market_sessions(work, market, [second_last], minute_days=[second_last])
        started = time.perf_counter()
        run_dbt(["build", *SILVER_SELECTION], work, work / "dbt")
        incremental_seconds = time.perf_counter() - started

        write_market_sessions(work, market, [last], minute_days=[last])
        started = time.perf_counter()
        run_dbt(["run", *SILVER_SELECTION], work, work / "dbt")
        incremental_run_seconds = time.perf_counter() - started
        rows_after = _counts(work)

        started = time.perf_counter()
        run_dbt(["run", *SILVER_SELECTION], work, work / "dbt")
        noop_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "title": f"silver dbt build, sandbox {tickers} tickers x {years} years ({len(sessions)} sessions)",
        "rows": [
            {"step": "write bronze (sandbox -> Parquet)", "seconds": bronze_seconds},
            {"step": "full dbt build (models + tests)", "seconds": full_seconds, **rows_full},
            {"step": "one-session incremental dbt build (models + tests)", "seconds": incremental_seconds},
            {
                "step": "one-session incremental dbt run (models only)",
                "seconds": incremental_run_seconds,
                **rows_after,
            },
            {"step": "dbt run with nothing new", "seconds": noop_seconds},
        ],
        "full_build_seconds": full_seconds,
        "incremental_build_seconds": incremental_seconds,
        "incremental_run_seconds": incremental_run_seconds,
        "notes": [
            f"minute bars for the last {minute_sessions} sessions only; other sessions use the daily VWAP fallback",
            "dbt in-process (dbtRunner); each call also pays 2-4 s of dbt parse and start-up",
        ],
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2, default=str))
