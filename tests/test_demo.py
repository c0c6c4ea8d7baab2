"""`quantmini demo` is the product's front door: it must run every layer end to end and exit 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_every_layer_and_validates(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLYGON_", "MASSIVE_", "DLT_"))}
    env["QM_DATA_DIR"] = str(tmp_path)
    env["COLUMNS"] = "160"
    done = subprocess.run(
        [sys.executable, "-m", "loaders.cli", "demo"],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    demo = tmp_path / "demo"
    for dataset in ("stocks_daily", "stocks_minute", "options_daily", "options_minute", "news", "splits"):
        assert list((demo / "bronze" / dataset).rglob("*.parquet")), f"no bronze for {dataset}"
    assert (demo / "quantmini.duckdb").exists()
    assert (demo / "gold" / "qlib" / "calendars" / "day.txt").read_text().splitlines()[-1] == "2025-12-31"
    assert "validate every layer: exit 0" in out
    assert "read gold with Qlib: exit 0" in out
    assert "$close" in out and "$factor" in out
    # the demo ends with a Qlib backtest on gold, summarised in one line
    assert "backtest on gold: exit 0" in out
    assert "Backtest TopkDropout" in out and "annualized return" in out
