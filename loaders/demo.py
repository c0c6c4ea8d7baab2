"""`quantmini demo`: the whole pipeline on the sandbox, end to end, in a few minutes.

sandbox (REST + S3) -> ingest flat files and REST datasets -> `dbt build` (silver + gold export) -> summary.
Each step prints the command a user would run for it, so the demo doubles as a walkthrough.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rich.table import Table

from loaders.terminal import SharedConsole

console = SharedConsole()

# Demo market: two years of daily data, minute data for the last weeks (each registry entry's
# `demo_sessions`). Sized so the whole demo finishes in well under five minutes on a 2-core machine.
DEMO_START = dt.date(2024, 1, 2)
DEMO_END = dt.date(2025, 12, 31)
DEMO_TICKERS = 60
# the flat files listed at the start (a month of daily stock bars)
LISTED_DATASET = "stocks_daily"


def _step(title: str, command: str, fn: Callable[[], int]) -> tuple[str, int, float]:
    console.rule(f"[bold]{title}")
    console.print(f"[dim]$ {command}[/dim]")
    started = time.perf_counter()
    code = fn()
    elapsed = time.perf_counter() - started
    colour = "green" if code == 0 else "red"
    console.print(f"[{colour}]{title}: exit {code} in {elapsed:.1f}s[/{colour}]")
    return title, code, elapsed


def _dbt_build() -> int:
    """The same in-process build `quantmini refresh` runs (it also releases dbt-duckdb's database handle)."""
    from loaders.config import load_settings
    from loaders.ops.runner import dbt_build

    outcome = dbt_build(load_settings())
    for failure in outcome.failures:
        console.print(f"[red]{failure}[/red]", markup=False)
    if outcome.message:
        console.print(f"dbt build failed: {outcome.message}", markup=False)
    return 0 if outcome.ok else 1


def _qlib_snippet(gold: Path) -> str:
    return (
        "import qlib\n"
        "from qlib.data import D\n"
        f'qlib.init(provider_uri="{gold}", region="us")\n'
        'print(D.features(D.instruments("all"), ["$close", "$factor", "$vwap", "$change"],\n'
        '                 start_time="2025-12-01", end_time="2025-12-31").tail())'
    )


def _run_qlib(gold: Path) -> int:
    """Run the printed snippet in a fresh interpreter, so what the user copies is what was checked."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _qlib_snippet(gold)], capture_output=True, text=True)
    console.print(done.stdout, markup=False)
    if done.returncode != 0:
        console.print(done.stderr[-2000:], markup=False)
    return done.returncode


def _run_backtest(gold: Path, summary: list[str]) -> int:
    """Qlib's TopkDropout backtest on gold in a fresh interpreter; keeps its one-line summary."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "loaders.gold.backtest", str(gold), "--deal-price", "vwap"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        console.print(done.stderr[-2000:], markup=False)
    else:
        summary.append(done.stdout.strip().splitlines()[-1])
    return done.returncode


def run_demo(keep_data: bool = False) -> int:
    from loaders import calendar
    from loaders import datasets as registry
    from loaders.config import load_settings
    from loaders.extras import require

    require("qlib", "the demo's Qlib read and backtest")
    from loaders.sandbox.market import MarketConfig
    from loaders.sandbox.server import SandboxServer

    base = load_settings().data_dir
    data_dir = base / "demo"
    if data_dir.exists() and not keep_data:
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    config = MarketConfig(seed=42, start=DEMO_START, end=DEMO_END, tickers=DEMO_TICKERS)
    started = time.perf_counter()
    results: list[tuple[str, int, float]] = []
    with SandboxServer(config, host="127.0.0.1", rest_port=0, s3_port=0) as server:
        env = server.env()
        env["QM_DATA_DIR"] = str(data_dir)
        env["DLT_DATA_DIR"] = str(data_dir / "dlt")
        os.environ.update(env)
        console.rule("[bold]Sandbox")
        console.print("The sandbox serves Polygon's REST API and S3 flat files. Point QuantMini at it with:")
        for key, value in env.items():
            console.print(f"  export {key}={value}")

        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=env["POLYGON_S3_ENDPOINT"],
            aws_access_key_id=env["POLYGON_S3_ACCESS_KEY_ID"],
            aws_secret_access_key=env["POLYGON_S3_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        month = f"{registry.DATASETS[LISTED_DATASET].s3_prefix}/2025/12/"
        listing = s3.list_objects_v2(Bucket=env["POLYGON_S3_BUCKET"], Prefix=month)
        console.print(f"Flat files for December 2025 (aws s3 ls s3://flatfiles/{month}):")
        for obj in listing.get("Contents", [])[:5]:
            console.print(f"  {obj['Key']}  {obj['Size']:>8} bytes  etag {obj['ETag']}")
        console.print(f"  ... {listing.get('KeyCount', 0)} files")

        from loaders.flatfiles.commands import ingest_command as ingest_files
        from loaders.rest.commands import ingest_command as ingest_rest

        last = server.market.today
        sessions = calendar.sessions(DEMO_START, last)
        # every dataset of the registry, in its order (each after the datasets it reads)
        for spec in registry.DATASETS.values():
            dataset = spec.name
            start = sessions[-spec.demo_sessions] if spec.demo_sessions else DEMO_START
            if spec.kind == "flatfile":
                results.append(
                    _step(
                        f"ingest {dataset}",
                        f"quantmini ingest -t {dataset} -s {start} -e {last} --incremental",
                        lambda d=dataset, s=start: ingest_files(
                            d, s, last, incremental=True, max_concurrent=4
                        ),
                    )
                )
                continue
            results.append(
                _step(
                    f"ingest {dataset}",
                    f"quantmini ingest -t {dataset} -s {start} -e {last}",
                    lambda d=dataset, s=start: ingest_rest(
                        d,
                        s,
                        last,
                        incremental=True,
                        max_concurrent=4,
                        rate_limit=None,
                        tickers_file=None,
                        include_short_data=False,
                        backfill_years=None,
                    ),
                )
            )
        results.append(_step("dbt build (silver + gold)", "dbt build", _dbt_build))

        from loaders.ops.validate import validate_command

        results.append(_step("validate every layer", "quantmini validate", validate_command))

    total = time.perf_counter() - started
    console.rule("[bold]Summary")
    steps = Table(title=f"Steps ({total:.0f}s in all)")
    steps.add_column("step")
    steps.add_column("exit", justify="right")
    steps.add_column("seconds", justify="right")
    for title, code, elapsed in results:
        steps.add_row(title, str(code), f"{elapsed:.1f}")
    console.print(steps)
    from loaders.ops.status import status_command

    console.print("What was loaded ($ quantmini status):")
    status_command()
    gold = data_dir / "gold" / "qlib"
    console.print(f"Landing: {data_dir / 'landing'}")
    console.print(
        f"Bronze:  {data_dir / 'bronze'}   (plain Parquet, Hive partitions: session_date=YYYY-MM-DD)"
    )
    console.print(f"Silver:  {data_dir / 'quantmini.duckdb'}   (duckdb {data_dir / 'quantmini.duckdb'})")
    console.print(f"Gold:    {gold}")
    console.print("Read the gold layer with Qlib:")
    console.print(_qlib_snippet(gold), markup=False)
    backtest: list[str] = []
    if (gold / "calendars" / "day.txt").exists():
        results.append(
            _step("read gold with Qlib", "python -c '<the snippet above>'", lambda: _run_qlib(gold))
        )
        results.append(
            _step(
                "backtest on gold",
                f"python -m loaders.gold.backtest {gold} --deal-price vwap",
                lambda: _run_backtest(gold, backtest),
            )
        )
    failed = [title for title, code, _ in results if code != 0]
    if failed:
        console.print(f"[red]Failed steps: {', '.join(failed)}[/red]")
        return 1
    for line in backtest:
        console.print(line, markup=False)
    return 0
