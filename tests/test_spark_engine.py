"""The same dbt models on DuckDB and on Apache Spark give the same silver and the same gold.

One tiny sandbox market is written to one bronze folder that a DuckDB data dir and a Spark data dir
share. Both engines build it (initial load), then build incrementally after bronze changes the ways
production changes it (new sessions, a split arriving with them, a re-published session with a
corrected close and a vanished row, minute bars, the contracts reference loaded late, the REST
datasets: news, fundamentals and short data, merged into bronze as the REST loader merges them); then
Spark rebuilds with --full-refresh (running the data tests too). Bronze folders with no files yet (the
contracts reference, the REST datasets at first) read as empty on both engines, with no vars. Every mart must match between the engines
(keys and non-float columns exactly, floats within 1e-12 relative), Spark's incremental result must
match its full refresh, and the Qlib export from Spark silver must match the export from DuckDB silver
byte for byte, except float32 rounding flips, which are counted and must each be one unit in the last
place of a value whose float64s agree to 1e-12.

Spark runs in this process through dbt-spark's session method (`local[2]`; one session for every run,
since a JVM holds one SparkContext). `test_standalone_cluster` runs dbt in a subprocess against a real
master and worker started from the pyspark wheel on loopback.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dbt_fixtures import (
    REPO_ROOT,
    contract_references,
    run_dbt,
    ticker_event_records,
    write_flatfile_session,
    write_market_sessions,
    write_rest_records,
)

from loaders.bronze import merge_partitions
from loaders.rest import parsing
from loaders.rest import settings as rest_settings
from loaders.sandbox.market import Market, MarketConfig
from loaders.spark import ensure_java, export_from_warehouse, warehouse_relation

# Spark pays a JVM start and about a second per query: minutes, not seconds, on 2 shared cores
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark"), pytest.mark.timeout(3600)]

NEW_SESSIONS = 6

# the models the comparison needs (their upstream staging views come with the `+`)
SPARK_SELECTION = [
    "--select",
    "+fct_stock_features_daily",
    "+fct_stock_minute_features_daily",
    "+fct_option_contracts_daily",
    "+fct_options_underlying_daily",
]
# the marts of the REST datasets, built from the second run on (their bronze arrives with it)
REST_SELECTION = [
    "+fct_news_sentiment_daily",
    "+fct_fundamentals_point_in_time",
    "+fct_short_data_daily",
]

# (schema, table): grain; fingerprints are engine-specific hashes, compared within one engine only
COMPARED = {
    ("main_intermediate", "int_stock_adjustment_factors"): ["ticker", "applies_until_date"],
    ("main_intermediate", "int_stock_minute_bars_aggregated_daily"): ["ticker", "session_date"],
    ("main_intermediate", "int_stock_daily_adjusted"): ["ticker", "session_date"],
    ("main_intermediate", "int_option_contracts"): ["contract_ticker"],
    ("main", "fct_stock_features_daily"): ["ticker", "session_date"],
    ("main", "fct_stock_minute_features_daily"): ["ticker", "session_date"],
    ("main", "fct_option_contracts_daily"): ["contract_ticker", "session_date"],
    ("main", "fct_options_underlying_daily"): ["underlying_ticker", "session_date"],
    ("main_intermediate", "int_ticker_history"): ["security_id", "valid_from_date"],
}
COMPARED_REST = {
    ("main_intermediate", "int_session_availability"): ["session_date"],
    ("main_intermediate", "int_news_mentions"): ["article_id", "ticker"],
    ("main", "fct_news_sentiment_daily"): ["ticker", "session_date"],
    ("main", "fct_fundamentals_point_in_time"): [
        "ticker",
        "timeframe",
        "financial_statement",
        "line_item",
        "valid_from_date",
    ],
    ("main", "fct_short_data_daily"): ["ticker", "session_date"],
}
# differ between the builds by design: `built_at` is when the run that wrote a row started,
# `rewritten_from_date` the first session that run rewrote (every ticker's on Spark), and the
# fingerprints hash with each engine's own function
ENGINE_SPECIFIC = {"source_fingerprint", "factor_signature", "built_at", "rewritten_from_date"}


def _spark_env(data_dir: Path, master: str) -> None:
    ensure_java()
    os.environ["QM_SPARK_MASTER"] = master
    os.environ["QM_SPARK_SHUFFLE_PARTITIONS"] = "2"


def _spark_run(args: list[str], data_dir: Path, work_dir: Path) -> Any:
    # no vars: the build finds on the Spark side which bronze folders have files
    return run_dbt([*args, "--target", "spark", "--threads", "2"], data_dir, work_dir)


def _duckdb_rows(data_dir: Path, schema: str, table: str, keys: list[str]) -> dict[str, list[Any]]:
    with duckdb.connect(str(data_dir / "quantmini.duckdb"), read_only=True) as con:
        return _columns(con, f"{schema}.{table}", keys)


def _spark_rows(data_dir: Path, schema: str, table: str, keys: list[str]) -> dict[str, list[Any]]:
    # read back without Spark: the warehouse is plain Parquet
    with duckdb.connect() as con:
        return _columns(con, warehouse_relation(data_dir, schema, table), keys)


def _columns(con: duckdb.DuckDBPyConnection, relation: str, keys: list[str]) -> dict[str, list[Any]]:
    cursor = con.execute(f"select * from {relation} order by {', '.join(keys)}")
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    return {name: [row[i] for row in rows] for i, name in enumerate(names) if name not in ENGINE_SPECIFIC}


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and _close(float(a), float(b))
    return a == b


def _assert_same(label: str, got: dict[str, list[Any]], want: dict[str, list[Any]]) -> None:
    assert sorted(got) == sorted(want), f"{label}: columns {sorted(got)} != {sorted(want)}"
    first = next(iter(want))
    assert len(got[first]) == len(want[first]), f"{label}: {len(got[first])} rows != {len(want[first])}"
    assert want[first], f"{label}: no rows to compare"
    for name, values in want.items():
        for i, (a, b) in enumerate(zip(got[name], values, strict=True)):
            assert _close(a, b), f"{label} row {i} {name}: {a!r} != {b!r}"


def _corrected_session(market: Market, day: dt.date, dropped: str, corrected: str) -> pa.Table:
    table = market.stock_day_aggs(day)
    table = table.filter(pc.not_equal(table.column("ticker"), dropped))
    is_corrected = pc.equal(table.column("ticker"), corrected)
    midpoint = pc.divide(pc.add(table.column("high"), table.column("low")), 2.0)
    close = pc.if_else(is_corrected, midpoint, table.column("close"))
    return table.set_column(table.column_names.index("close"), "close", close)


# the REST datasets of the REST marts, each with the record date a load window selects on
REST_DATASETS = {
    "news": (parsing.news, "published_utc"),
    "fundamentals": (parsing.financials, "filing_date"),
    "short_interest": (parsing.short_interest, "settlement_date"),
    "short_volume": (parsing.short_volume, "date"),
}


def _merge_rest(
    data_dir: Path, market: Market, after: str | None, until: str | None, generation: int
) -> None:
    """One load of each REST dataset (records dated after `after` up to `until`): parsed as the REST
    loader parses them and merged into bronze as its destination merges them."""
    load_id = f"{dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() + generation * 86_400:.6f}"
    for dataset, (parse, date_field) in REST_DATASETS.items():
        records = [
            r
            for r in getattr(market, dataset if dataset != "fundamentals" else "financials")()
            if (after is None or r[date_field][:10] > after)
            and (until is None or r[date_field][:10] <= until)
        ]
        spec = rest_settings.DATASETS[dataset]
        tables = parse(records)
        for table_spec in spec.tables:
            table = tables[table_spec.name]
            table = table.append_column("_dlt_load_id", pa.array([load_id] * table.num_rows, pa.string()))
            merge_partitions(
                data_dir / "bronze",
                spec.table_dir(table_spec),
                table,
                table_spec.partition,
                table_spec.primary_key,
            )


def _gold_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest_spans(content: bytes) -> dict[str, Any]:
    """A gold manifest without what is bookkeeping of one export (per-ticker write tokens, the
    fingerprints of silver's doubles, which a one-ulp difference between engines changes, and the
    newest `built_at` consumed, the start of the build that wrote it)."""
    import json

    manifest = json.loads(content)
    for freq in manifest.values():
        if isinstance(freq, dict):
            freq.pop("built_at", None)
        for entry in freq.get("symbols", {}).values() if isinstance(freq, dict) else []:
            for key in ("token", "rows", "hash", "short"):
                entry.pop(key, None)
    return manifest


def _float32_flips(name: str, got: bytes, want: bytes) -> int:
    """Elements of two Qlib .bin files (float32 start index, then float32 values) that differ; each
    must be a one-ulp rounding flip."""
    a = np.frombuffer(got, dtype="<f4")
    b = np.frombuffer(want, dtype="<f4")
    assert a.shape == b.shape and a[0] == b[0], f"{name}: different length or start index"
    differ = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    if differ.any():
        ulps = np.abs(a[differ].view("<i4").astype(np.int64) - b[differ].view("<i4").astype(np.int64))
        assert ulps.max() <= 1, f"{name}: values differ by {ulps.max()} float32 ulps"
    return int(differ.sum())


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(
        MarketConfig(
            seed=11,
            start=dt.date(2024, 1, 2),
            end=dt.date(2024, 4, 30),
            tickers=4,
            option_underlyings=1,
            contracts_per_underlying=2,
        )
    )


def test_duckdb_and_spark_build_the_same_silver_and_gold(tmp_path: Path, market: Market) -> None:
    duck_dir, spark_dir = tmp_path / "duckdb", tmp_path / "spark"
    duck_dir.mkdir()
    spark_dir.mkdir()
    (spark_dir / "bronze").symlink_to(duck_dir / "bronze", target_is_directory=True)
    _spark_env(spark_dir, "local[2]")
    sessions = market.sessions
    first, later = sessions[:-NEW_SESSIONS], sessions[-NEW_SESSIONS:]
    cutoff = first[-1].isoformat()

    # initial load: sessions up to the cutoff, the corporate actions known by then
    write_market_sessions(duck_dir, market, first, minute_days=first[-2:])
    write_rest_records(duck_dir, "splits", [s for s in market.splits() if s["execution_date"] <= cutoff])
    write_rest_records(
        duck_dir, "dividends", [d for d in market.dividends() if d["ex_dividend_date"] <= cutoff]
    )
    # the event histories of the tickers trading now, as the loader requests them (LGCY became NEWC)
    current = market.stock_day_aggs(sessions[-1]).column("ticker").to_pylist()
    write_rest_records(duck_dir, "ticker_events", ticker_event_records(market, sorted(current)))
    # the REST datasets' first load (their marts are built from the second run on)
    _merge_rest(duck_dir, market, after=None, until=cutoff, generation=0)
    run_dbt(["run", *SPARK_SELECTION], duck_dir, tmp_path / "dbt-duckdb")
    _spark_run(["run", *SPARK_SELECTION], spark_dir, tmp_path / "dbt-spark")
    for (schema, table), keys in COMPARED.items():
        if table == "int_option_contracts":
            continue  # no contracts reference yet on either engine; compared after phase 2
        _assert_same(
            f"initial {table}",
            _spark_rows(spark_dir, schema, table, keys),
            _duckdb_rows(duck_dir, schema, table, keys),
        )

    # new sessions with a split among them, a re-published old session, late minute bars, contracts
    write_market_sessions(duck_dir, market, later, minute_days=later[-2:])
    daily = market.stock_day_aggs(first[-10]).column("ticker").to_pylist()
    write_flatfile_session(
        duck_dir,
        "stocks_daily",
        first[-10],
        _corrected_session(market, first[-10], dropped=daily[-1], corrected=daily[0]),
        generation=1,
    )
    write_flatfile_session(duck_dir, "stocks_minute", first[-5], market.stock_minute_aggs(first[-5]))
    split = {"id": "new-split", "execution_date": later[2].isoformat(), "split_from": 1, "split_to": 3}
    write_rest_records(duck_dir, "splits", [*market.splits(), {**split, "ticker": daily[1]}], generation=1)
    write_rest_records(duck_dir, "dividends", market.dividends(), generation=1)
    write_rest_records(
        duck_dir, "options_contracts", contract_references(market, [*first, *later]), generation=1
    )
    _merge_rest(duck_dir, market, after=cutoff, until=None, generation=1)
    run_dbt(["run", *SPARK_SELECTION, *REST_SELECTION], duck_dir, tmp_path / "dbt-duckdb")
    _spark_run(["run", *SPARK_SELECTION, *REST_SELECTION], spark_dir, tmp_path / "dbt-spark")
    ran = tmp_path / "dbt-spark" / "target" / "run" / "quantmini" / "models" / "marts"
    assert "insert overwrite" in (ran / "fct_stock_features_daily.sql").read_text().lower(), (
        "the second Spark run was not incremental"
    )

    incremental = {}
    for (schema, table), keys in {**COMPARED, **COMPARED_REST}.items():
        incremental[table] = _spark_rows(spark_dir, schema, table, keys)
        _assert_same(f"incremental {table}", incremental[table], _duckdb_rows(duck_dir, schema, table, keys))
    features = incremental["fct_stock_features_daily"]
    split_rows = [f for t, f in zip(features["ticker"], features["adj_factor"], strict=True) if t == daily[1]]
    assert min(split_rows) < 0.34, "the split reached the Spark mart"
    assert (daily[-1], first[-10]) not in set(zip(features["ticker"], features["session_date"], strict=True))
    renamed = [
        (ticker, day)
        for ticker, day in zip(
            incremental["fct_news_sentiment_daily"]["ticker"],
            incremental["fct_news_sentiment_daily"]["session_date"],
            strict=True,
        )
        if ticker == "NEWC"
    ]
    assert any(day < dt.date(2024, 3, 13) for _, day in renamed), "news of LGCY count for NEWC on Spark too"
    for table in ("fct_fundamentals_point_in_time", "fct_short_data_daily", "int_news_mentions"):
        assert incremental[table][next(iter(incremental[table]))], f"{table} has rows"

    # gold from Spark silver == gold from DuckDB silver
    duck_gold, spark_gold = tmp_path / "gold-duckdb", tmp_path / "gold-spark"
    from loaders.gold.exporter import export_duckdb_file

    export_duckdb_file(duck_dir / "quantmini.duckdb", duck_gold, features=("return_1d", "rsi_14"), full=True)
    export_from_warehouse(spark_dir, spark_gold, features=("return_1d", "rsi_14"), full=True)
    got, want = _gold_files(spark_gold), _gold_files(duck_gold)
    assert sorted(got) == sorted(want), "the same gold files"
    assert any(name.endswith(".1min.bin") for name in want), "minute gold was exported"
    flips = 0
    for name, content in want.items():
        if got[name] != content:
            if name == ".quantmini-manifest.json":
                assert _manifest_spans(got[name]) == _manifest_spans(content), (
                    "the manifests record the same spans"
                )
                continue
            assert name.endswith(".bin"), f"{name} differs"
            flips += _float32_flips(name, got[name], content)
    values = sum(len(c) // 4 - 1 for n, c in want.items() if n.endswith(".bin"))
    print(f"gold: {len(want)} files, {values} float32 values, {flips} one-ulp rounding flips")
    assert flips <= max(1, values // 10_000), f"{flips} float32 flips among {values} values"

    # Spark's incremental result equals its full refresh (and the data tests pass on Spark)
    _spark_run(
        ["build", "--full-refresh", *SPARK_SELECTION, *REST_SELECTION], spark_dir, tmp_path / "dbt-spark-full"
    )
    for (schema, table), keys in {**COMPARED, **COMPARED_REST}.items():
        _assert_same(f"full refresh {table}", _spark_rows(spark_dir, schema, table, keys), incremental[table])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"Spark process exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listening on 127.0.0.1:{port} after {seconds} s")


def test_standalone_cluster(tmp_path: Path, market: Market) -> None:
    """`dbt run --target spark` against a real standalone master and worker, not local mode (the data
    tests run on Spark in the test above)."""
    import pyspark

    java_home = ensure_java()
    spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
    master_port, worker_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "JAVA_HOME": java_home,
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "SPARK_LOG_DIR": str(tmp_path / "spark-logs"),
        "SPARK_WORKER_DIR": str(tmp_path / "spark-work"),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    common = ["--host", "127.0.0.1", "--webui-port", "0"]
    started: list[subprocess.Popen] = []
    logs = tmp_path / "cluster.log"
    try:
        with logs.open("w") as log:
            master = subprocess.Popen(
                [
                    str(spark_class),
                    "org.apache.spark.deploy.master.Master",
                    *common,
                    "--port",
                    str(master_port),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            started.append(master)
            _wait_for_port(master_port, master)
            url = f"spark://127.0.0.1:{master_port}"
            worker = subprocess.Popen(
                [
                    str(spark_class),
                    "org.apache.spark.deploy.worker.Worker",
                    *common,
                    "--port",
                    str(worker_port),
                    "--cores",
                    "1",
                    "--memory",
                    "1g",
                    url,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            started.append(worker)
            _wait_for_port(worker_port, worker)

        data_dir = tmp_path / "data"
        days = market.sessions[-30:]
        write_market_sessions(data_dir, market, days, minute_days=days[-1:], options=False)
        write_rest_records(data_dir, "splits", market.splits())
        build = subprocess.run(
            [
                str(Path(sys.executable).with_name("dbt")),
                "run",
                "--target",
                "spark",
                "--select",
                "+fct_stock_features_daily",
                "--project-dir",
                str(REPO_ROOT),
                "--profiles-dir",
                str(REPO_ROOT),
                "--target-path",
                str(tmp_path / "target"),
                "--log-path",
                str(tmp_path / "logs"),
            ],
            env={
                **env,
                "QM_DATA_DIR": str(data_dir),
                "QM_SPARK_MASTER": url,
                "QM_SPARK_SHUFFLE_PARTITIONS": "2",
                "QM_SPARK_DRIVER_MEMORY": "1g",
            },
            capture_output=True,
            text=True,
            timeout=3000,
        )
        assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
        # the work ran on the cluster's executor, not in the driver
        executors = list((tmp_path / "spark-work").glob("app-*/*/stderr"))
        assert executors, "no executor ran on the standalone worker"
        with duckdb.connect() as con:
            relation = warehouse_relation(data_dir, "main", "fct_stock_features_daily")
            rows, tickers = con.execute(f"select count(*), count(distinct ticker) from {relation}").fetchone()
        assert rows == sum(market.stock_day_aggs(day).num_rows for day in days)
        assert tickers == len(
            {t for day in days for t in market.stock_day_aggs(day).column("ticker").to_pylist()}
        )
    finally:
        for process in reversed(started):
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(tmp_path / "spark-work", ignore_errors=True)
