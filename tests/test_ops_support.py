"""Shared fixtures for the ops tests: contract-shaped bronze partitions written directly with pyarrow.

Writing bronze by hand (per docs/architecture.md) keeps the unit tests independent of the loaders and
fast; the end-to-end test uses the real loaders against the sandbox.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq

NY = ZoneInfo("America/New_York")
PREFIX = {
    "stocks_daily": "us_stocks_sip/day_aggs_v1",
    "stocks_minute": "us_stocks_sip/minute_aggs_v1",
    "options_daily": "us_options_opra/day_aggs_v1",
    "options_minute": "us_options_opra/minute_aggs_v1",
}


def bronze_table(dataset: str, day: dt.date, tickers: list[str], *, price: float = 10.0) -> pa.Table:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=NY).astimezone(dt.UTC)
    key = f"{PREFIX[dataset]}/{day:%Y}/{day:%m}/{day.isoformat()}.csv.gz"
    n = len(tickers)
    return pa.table(
        {
            "ticker": pa.array(tickers, pa.string()),
            "volume": pa.array([1000.0 + i for i in range(n)], pa.float64()),
            "open": pa.array([price] * n, pa.float64()),
            "close": pa.array([price + 0.5] * n, pa.float64()),
            "high": pa.array([price + 1] * n, pa.float64()),
            "low": pa.array([price - 1] * n, pa.float64()),
            "window_start": pa.array([start] * n, pa.timestamp("us", tz="UTC")),
            "transactions": pa.array([10] * n, pa.int64()),
            "_source_key": pa.array([key] * n, pa.string()),
            "_source_etag": pa.array(['"etag"'] * n, pa.string()),
            "_dlt_load_id": pa.array(["1700000000.1"] * n, pa.string()),
        }
    )


def write_bronze(
    data_dir: Path, dataset: str, days: list[dt.date], tickers: list[str] | None = None, **kwargs: float
) -> None:
    """One `session_date=` folder per day, one ZSTD Parquet file each."""
    tickers = tickers or ["AAPL", "BRK.B", "KIMpL"]
    for day in days:
        folder = data_dir / "bronze" / dataset / f"session_date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(
            bronze_table(dataset, day, tickers, **kwargs),
            folder / "1700000000.1-0.parquet",
            compression="zstd",
        )
