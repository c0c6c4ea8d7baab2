"""Sandbox market -> bronze Parquet -> the real silver models -> gold, read back by Qlib in its own process.

Bronze is written straight from the sandbox's `Market` in the documented bronze layout, so this proves the
gold export against the real `dbt build` (splits, half days, minute bars) without the download steps.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders.calendar import write_sessions_file
from loaders.sandbox.market import Market, MarketConfig

ROOT = Path(__file__).resolve().parents[1]

QLIB_READ = r"""
import json, sys
import qlib
from qlib.data import D
qlib.init(provider_uri=sys.argv[1], region="us", expression_cache=None, dataset_cache=None, kernels=1)
names = D.list_instruments(D.instruments("all"), as_list=True)
frame = D.features(names, ["$close", "$factor", "$close / $factor", "$change", "Ref($close, 1)"])
minute = D.features(D.instruments("all_1min"), ["$close"], freq="1min")
out = {
    "calendar": [str(t.date()) for t in D.calendar(freq="day")],
    "minutes": len(D.calendar(freq="1min")),
    "minute_rows": int(minute["$close"].notna().sum()),
    "rows": [[i, str(d.date()), *[None if v != v else float(v) for v in row]] for (i, d), row in zip(frame.index, frame.to_numpy())],
}
print(json.dumps(out))
"""


def _dbt_build(tmp_path: Path, env: dict[str, str], *select: str) -> None:
    build = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "build",
            *(["--select", *select] if select else []),
            "--project-dir",
            str(ROOT),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-4000:]


def _summary(tmp_path: Path) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "quantmini.duckdb"), read_only=True)
    try:
        return con.execute(
            "select freq, export_mode, symbols_written, symbols_appended, symbols_rewritten, files_written "
            "from main_gold.qlib_export order by freq"
        ).fetchall()
    finally:
        con.close()


def _write_bronze(data_dir: Path, market: Market, minute_days: list[dt.date]) -> None:
    for dataset, days, render in (
        ("stocks_daily", market.sessions, market.stock_day_aggs),
        ("stocks_minute", minute_days, market.stock_minute_aggs),
    ):
        for day in days:
            table = render(day)
            n = table.num_rows
            table = pa.table(
                {
                    "ticker": table.column("ticker"),
                    "volume": table.column("volume").cast(pa.float64()),
                    "open": table.column("open"),
                    "high": table.column("high"),
                    "low": table.column("low"),
                    "close": table.column("close"),
                    "window_start": table.column("window_start")
                    .cast(pa.timestamp("ns", "UTC"))
                    .cast(pa.timestamp("us", "UTC")),
                    "transactions": table.column("transactions"),
                    "_source_key": pa.array([f"us_stocks_sip/{dataset}/{day}.csv.gz"] * n),
                    "_source_etag": pa.array(['"test"'] * n),
                    "_dlt_load_id": pa.array(["1700000000.0"] * n),
                }
            )
            folder = data_dir / "bronze" / dataset / f"session_date={day.isoformat()}"
            folder.mkdir(parents=True)
            pq.write_table(table, folder / "part-0.parquet")
    write_sessions_file(data_dir / "bronze")  # the session calendar every flat-file ingest writes
    splits = market.splits()
    folder = data_dir / "bronze" / "splits"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.Table.from_pylist([{**s, "_dlt_load_id": "1700000000.0"} for s in splits]),
        folder / "part-0.parquet",
    )


@pytest.mark.slow
@pytest.mark.qlib
def test_dbt_build_on_sandbox_bronze_gives_a_qlib_dir_that_returns_silver(tmp_path: Path) -> None:
    market = Market(
        MarketConfig(
            seed=3,
            start=dt.date(2025, 1, 2),
            end=dt.date(2025, 4, 30),
            tickers=10,
            option_underlyings=1,
            contracts_per_underlying=4,
        )
    )
    assert market.splits(), "the sandbox market should split at least one ticker in this range"
    minute_days = market.sessions[-2:]
    _write_bronze(tmp_path, market, minute_days)
    env = {
        **os.environ,
        "QM_DATA_DIR": str(tmp_path),
        "DBT_PROFILES_DIR": str(ROOT),
        "QM_QLIB_FEATURES": "return_1d,rsi_14,atr_14",
    }
    _dbt_build(tmp_path, env, "+qlib_export")  # the gold model and every model upstream of it

    gold = tmp_path / "gold" / "qlib"
    read = subprocess.run(
        [sys.executable, "-c", QLIB_READ, str(gold)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert read.returncode == 0, read.stderr[-4000:]
    got = json.loads(read.stdout.strip().splitlines()[-1])

    con = duckdb.connect(str(tmp_path / "quantmini.duckdb"), read_only=True)
    silver = con.execute(
        "select ticker, session_date, adj_close, adj_factor, close, change from fct_stock_features_daily"
    ).fetchall()
    con.close()
    assert got["calendar"] == [d.isoformat() for d in market.sessions]
    assert got["minutes"] == 2 * 390
    assert got["minute_rows"] > 1000

    from loaders.gold.symbols import from_qlib_symbol

    by_key = {(from_qlib_symbol(i), d): row for i, d, *row in got["rows"]}
    split_tickers = {s["ticker"] for s in market.splits()}
    adjusted = 0
    for ticker, day, adj_close, factor, close, change in silver:
        close_q, factor_q, raw_q, change_q, _ = by_key[(ticker, day.isoformat())]
        assert close_q == pytest.approx(adj_close, rel=1e-6)
        assert factor_q == pytest.approx(factor, rel=1e-6)
        assert raw_q == pytest.approx(close, rel=1e-5)
        assert (change_q is None and change is None) or change_q == pytest.approx(change, rel=1e-5, abs=1e-7)
        adjusted += ticker in split_tickers and not np.isclose(factor, 1.0)
    assert adjusted > 0, "a split ticker's history should carry factors other than 1"

    # the export ran inside dbt build, as a full export with the configured features
    summary = _summary(tmp_path)
    assert [(f, mode) for f, mode, *_ in summary] == [("1min", "full"), ("day", "full")]
    assert list((gold / "features").glob("*/atr_14.day.bin"))
    # building the gold model again finds nothing new: incremental, no file written
    _dbt_build(tmp_path, env, "qlib_export")
    assert _summary(tmp_path) == [("1min", "incremental", 0, 0, 0, 0), ("day", "incremental", 0, 0, 0, 0)]
