"""The command line as a user meets it: full-width plain output without a terminal, dates checked by
option, one wording for a range that ends before it starts, `--version`."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_ops_support import write_bronze

from loaders import calendar

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[")


def _quantmini(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`quantmini ARGS` in a fresh process whose stdout and stderr are pipes, as under cron or CI."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    env["QM_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "loaders.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture()
def lake(tmp_path: Path) -> Path:
    """Bronze for two datasets with long names, with a hole in each, and a failed run in the ledger."""
    from loaders import runs

    days = calendar.sessions("2025-03-03", "2025-03-31")
    write_bronze(tmp_path, "options_minute", [d for d in days if d != dt.date(2025, 3, 12)])
    write_bronze(tmp_path, "stocks_minute", [d for d in days if d != dt.date(2025, 3, 20)])
    run = runs.start_run(tmp_path / "runs", "stocks_minute", "flatfiles", {}, announce=False)
    run.add("failed", date="2025-03-20", error="the file was cut short by the endpoint")
    run.finish()
    return tmp_path


def _assert_plain_and_whole(text: str) -> None:
    assert not ANSI.search(text), "colour or cursor codes written to a pipe"
    assert "…" not in text, text  # rich abbreviates a cell that does not fit with an ellipsis
    assert max(len(line) for line in text.splitlines()) > 80  # not squeezed into 80 columns


def test_status_without_a_terminal_is_plain_and_full_width(lake: Path) -> None:
    done = _quantmini(lake, "status")
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_plain_and_whole(done.stdout)
    [minute] = [line for line in done.stdout.splitlines() if "stocks_minute" in line]
    assert "2025-03-03" in minute and "2025-03-31" in minute and "failed (1 failed)" in minute
    assert str(lake) in done.stdout  # the title names the whole data directory


def test_gaps_without_a_terminal_is_plain_and_full_width(lake: Path) -> None:
    done = _quantmini(lake, "gaps")
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_plain_and_whole(done.stdout)
    lines = done.stdout.splitlines()
    assert any("options_minute" in line and "2025-03-12" in line for line in lines), done.stdout
    assert any("stocks_minute" in line and "2025-03-20" in line for line in lines), done.stdout
