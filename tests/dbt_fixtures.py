"""Bronze fixtures and an in-process dbt runner for the silver tests.

The fixtures write Parquet exactly in the bronze layout of docs/architecture.md (Hive folder per
session, the flat-file columns plus `_source_key`, `_source_etag`, `_dlt_load_id`), and REST datasets in
the layout of the REST loader (`bronze/<dataset>/<partition>=YYYY-MM-DD/`, partition column only in the
path), so the dbt models are tested against the same files the loaders produce.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loaders.calendar import write_sessions_file

REPO_ROOT = Path(__file__).resolve().parents[1]

FLATFILE_KEYS = {
    "stocks_daily": "us_stocks_sip/day_aggs_v1",
    "stocks_minute": "us_stocks_sip/minute_aggs_v1",
    "options_daily": "us_options_opra/day_aggs_v1",
    "options_minute": "us_options_opra/minute_aggs_v1",
}

# The silver models this area owns; tests and the benchmark build exactly these (and their tests), so
# models other areas add beside them do not change what is measured.
SILVER_MODELS = (
    "stg_polygon__stocks_daily",
    "stg_polygon__stocks_minute",
    "stg_polygon__options_daily",
    "stg_polygon__options_minute",
    "stg_polygon__splits",
    "stg_polygon__dividends",
    "stg_polygon__options_contracts",
    "stg_exchange_calendar__trading_sessions",
    "stg_polygon__ticker_events",
    "int_trading_sessions",
    "int_ticker_history",
    "int_stock_daily_bars",
    "int_stock_adjustment_factors",
    "int_stock_minute_bars_aggregated_daily",
    "int_stock_daily_adjusted",
    "int_option_contracts",
    "int_option_contract_bars_daily",
    "fct_stock_features_daily",
    "fct_stock_minute_features_daily",
    "fct_option_contracts_daily",
    "fct_options_underlying_daily",
)
SILVER_SELECTION = ["--select", *SILVER_MODELS]

REST_PARTITIONS = {
    "splits": "execution_date",
    "dividends": "ex_dividend_date",
    "options_contracts": "expiration_date",
    "short_interest": "settlement_date",
    "short_volume": "date",
    "news": "published_date",
    "ticker_events": "event_date",
}


def load_id_for(day: dt.date, generation: int = 0) -> str:
    """A dlt-style load id (Unix seconds as text); later generations sort after earlier ones."""
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() + generation * 86_400 + day.toordinal()
    return f"{base:.6f}"


def bronze_flatfile_table(polygon_rows: pa.Table, dataset: str, day: dt.date, load_id: str) -> pa.Table:
    """Polygon's flat-file columns turned into the bronze columns (typed as the bronze writer types them)."""
    key = f"{FLATFILE_KEYS[dataset]}/{day:%Y/%m}/{day.isoformat()}.csv.gz"
    n = polygon_rows.num_rows
    window_start = pc.cast(
        pc.divide(polygon_rows.column("window_start"), pa.scalar(1000, pa.int64())), pa.int64()
    ).cast(pa.timestamp("us", tz="UTC"))
    return pa.table(
        {
            "ticker": polygon_rows.column("ticker").cast(pa.string()),
            "volume": polygon_rows.column("volume").cast(pa.float64()),
            "open": polygon_rows.column("open").cast(pa.float64()),
            "close": polygon_rows.column("close").cast(pa.float64()),
            "high": polygon_rows.column("high").cast(pa.float64()),
            "low": polygon_rows.column("low").cast(pa.float64()),
            "window_start": window_start,
            "transactions": polygon_rows.column("transactions").cast(pa.int64()),
            "_source_key": pa.array([key] * n, pa.string()),
            "_source_etag": pa.array([f'"etag-{load_id}"'] * n, pa.string()),
            "_dlt_load_id": pa.array([load_id] * n, pa.string()),
        }
    )


def write_flatfile_session(
    data_dir: Path, dataset: str, day: dt.date, polygon_rows: pa.Table, generation: int = 0
) -> Path:
    """Write (or replace as a whole) one session folder of a flat-file dataset."""
    load_id = load_id_for(day, generation)
    folder = data_dir / "bronze" / dataset / f"session_date={day.isoformat()}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    path = folder / f"{load_id}-0.parquet"
    pq.write_table(bronze_flatfile_table(polygon_rows, dataset, day, load_id), path, compression="zstd")
    write_sessions_file(data_dir / "bronze")  # as every flat-file ingest does
    return path


def write_rest_records(
    data_dir: Path, dataset: str, records: Sequence[dict[str, Any]], generation: int = 0
) -> None:
    """Replace a REST dataset in bronze with these Polygon result records, partitioned like the REST loader."""
    partition = REST_PARTITIONS[dataset]
    root = data_dir / "bronze" / dataset
    if root.exists():
        shutil.rmtree(root)
    if not records:
        return
    load_id = f"{dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp() + generation * 86_400:.6f}"
    rows = [{**record, "_dlt_load_id": load_id} for record in records]
    table = pa.Table.from_pylist(rows)
    for value in sorted(set(table.column(partition).to_pylist())):
        part = table.filter(pc.equal(table.column(partition), value)).drop_columns([partition])
        folder = root / f"{partition}={value}"
        folder.mkdir(parents=True)
        pq.write_table(part, folder / "part-0.parquet", compression="zstd")


def ticker_event_records(market: Any, tickers: Iterable[str]) -> list[dict[str, Any]]:
    """Bronze rows of ticker_events for these tickers, parsed as the REST loader parses them."""
    from loaders.rest import parsing

    rows: dict[str, dict[str, Any]] = {}
    for ticker in tickers:
        for row in parsing.ticker_events(market.ticker_events(ticker), ticker)["ticker_events"].to_pylist():
            rows[row["id"] + row["ticker"]] = {**row, "event_date": row["event_date"].isoformat()}
    return list(rows.values())


def contract_references(market: Any, days: Iterable[dt.date]) -> list[dict[str, Any]]:
    """The contracts reference the loaders produce for these sessions' bars: every contract listed on
    any of them (an expired one as listed on its last day, an adjusted one under its old ticker too)."""
    seen: dict[str, dict[str, Any]] = {}
    for day in days:
        for contract in market.options_contracts(day):
            seen[contract["ticker"]] = contract
    return list(seen.values())


def write_market_sessions(
    data_dir: Path,
    market: Any,
    days: Iterable[dt.date],
    *,
    minute_days: Iterable[dt.date] = (),
    options: bool = True,
    generation: int = 0,
) -> None:
    """Write sandbox-market flat-file tables for these sessions into bronze."""
    minute_set = set(minute_days)
    for day in days:
        write_flatfile_session(data_dir, "stocks_daily", day, market.stock_day_aggs(day), generation)
        if options:
            write_flatfile_session(data_dir, "options_daily", day, market.option_day_aggs(day), generation)
        if day in minute_set:
            write_flatfile_session(data_dir, "stocks_minute", day, market.stock_minute_aggs(day), generation)


def run_dbt(args: list[str], data_dir: Path, work_dir: Path) -> Any:
    """Run dbt in-process against `data_dir` (its quantmini.duckdb) and fail loudly with dbt's own errors."""
    from dbt.cli.main import dbtRunner

    saved = {name: os.environ.get(name) for name in ("QM_DATA_DIR", "DBT_PROFILES_DIR")}
    os.environ["QM_DATA_DIR"] = str(data_dir)
    os.environ["DBT_PROFILES_DIR"] = str(REPO_ROOT)
    full_args = [
        *args,
        "--project-dir",
        str(REPO_ROOT),
        "--profiles-dir",
        str(REPO_ROOT),
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
        "--no-use-colors",
        "--quiet",
    ]
    from dbt.adapters.duckdb import environments

    # dbt-duckdb can leave its database handle open after an in-process run; keep the environments it
    # creates and close them, so the test can open the file (with another configuration) afterwards
    created: list[Any] = []
    original_create = environments.create

    def recording_create(credentials: Any) -> Any:
        env = original_create(credentials)
        created.append(env)
        return env

    environments.create = recording_create
    try:
        result = dbtRunner().invoke(full_args)
    finally:
        environments.create = original_create
        _release_duckdb(created)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        gc.collect()
    if not result.success:
        failures = []
        if result.result is not None and hasattr(result.result, "results"):
            for node_result in result.result.results:
                if str(node_result.status) not in ("success", "pass"):
                    failures.append(
                        f"{node_result.node.unique_id}: {node_result.status}: {node_result.message}"
                    )
        raise AssertionError(f"dbt {' '.join(args)} failed: {result.exception or ''}\n" + "\n".join(failures))
    return result


def _release_duckdb(created: list[Any]) -> None:
    """Close every DuckDB handle dbt-duckdb still holds: the environments of this run and the shared one."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.factory import cleanup_connections

    with contextlib.suppress(Exception):
        cleanup_connections()  # per-thread cursors keep the database instance alive otherwise
    with DuckDBConnectionManager._LOCK:
        shared = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    for env in [*created, shared]:
        if env is not None:
            with contextlib.suppress(Exception):
                env.close()


def query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a query against the silver database of `data_dir`."""
    with duckdb.connect(str(data_dir / "quantmini.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def table_rows(data_dir: Path, relation: str, order_by: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and every row of a silver relation in a stable order."""
    with duckdb.connect(str(data_dir / "quantmini.duckdb"), read_only=True) as con:
        cursor = con.execute(f"select * from {relation} order by {order_by}")
        names = [d[0] for d in cursor.description]
        return names, cursor.fetchall()
