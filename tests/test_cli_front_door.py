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


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (["ingest", "-t", "stocks_daily", "-s", "2024-13-01"], "'-s' / '--start'", "'2024-13-01'"),
        (["ingest", "-t", "news", "-e", "20240101"], "'-e' / '--end'", "'20240101'"),
        (["gaps", "--start", "2024-02-30"], "'-s' / '--start'", "'2024-02-30'"),
        (
            ["backfill", "-t", "stocks_daily", "-s", "2024-01-01", "-e", "yesterday"],
            "'-e' / '--end'",
            "'yesterday'",
        ),
        (["bulk", "-e", "2024-1-5"], "'-e' / '--end'", "'2024-1-5'"),
        (["retry-failed", "--dismiss", "-s", "2024/01/02"], "'-s' / '--start'", "'2024/01/02'"),
        (["sandbox", "serve", "--today", "2025-06-31"], "'--today'", "'2025-06-31'"),
    ],
)
def test_a_bad_date_is_refused_naming_its_option(
    tmp_path: Path, args: list[str], option: str, value: str
) -> None:
    done = _quantmini(tmp_path, *args)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"Error: Invalid value for {option}: {value} is not a date (expected YYYY-MM-DD)" in done.stderr
    assert not ANSI.search(done.stderr) and "╭" not in done.stderr  # one plain line, not a panel
    assert not (tmp_path / "runs").exists()  # refused before any command ran


RANGE = "end 2024-02-01 is before start 2024-03-01"


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "-t", "stocks_daily"],
        ["ingest", "-t", "splits"],
        ["gaps", "-t", "stocks_daily"],
        ["backfill", "-t", "stocks_daily"],
        ["retry-failed", "--dismiss"],
    ],
)
def test_a_range_that_ends_before_it_starts_is_worded_once(tmp_path: Path, args: list[str]) -> None:
    done = _quantmini(tmp_path, *args, "-s", "2024-03-01", "-e", "2024-02-01")
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"Error: Invalid value for -s/--start, -e/--end: {RANGE}" in done.stderr


def test_the_layers_word_a_reversed_range_as_the_command_line_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Commands called from Python (refresh, the demo, tests) get the same sentence from every layer."""
    from loaders.flatfiles.commands import ingest_command as files
    from loaders.ops.backfill import backfill_command
    from loaders.ops.gaps import gaps_command
    from loaders.rest.commands import ingest_command as rest

    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    write_bronze(tmp_path, "stocks_daily", calendar.sessions("2024-02-01", "2024-03-01"))
    start, end = dt.date(2024, 3, 1), dt.date(2024, 2, 1)
    assert files("stocks_daily", start, end, incremental=True, max_concurrent=1) == 2
    assert (
        rest(
            "splits",
            start,
            end,
            incremental=True,
            max_concurrent=1,
            rate_limit=None,
            tickers_file=None,
            include_short_data=False,
            backfill_years=None,
        )
        == 2
    )
    assert backfill_command("stocks_daily", start, end, None) == 2
    assert gaps_command("stocks_daily", start, end, None) == 2
    err = capsys.readouterr()
    text = " ".join((err.out + err.err).split())
    assert text.count(RANGE) == 4, text


def test_version_comes_from_the_package_metadata(tmp_path: Path) -> None:
    from importlib.metadata import version

    done = _quantmini(tmp_path, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"quantmini {version('quantmini')}"


def test_dates_parse_strictly() -> None:
    from loaders.dates import parse_date, range_error

    assert parse_date("2024-02-29") == dt.date(2024, 2, 29)
    for bad in ("2023-02-29", "20240101", "2024-W01-1", "2024-1-5", ""):
        with pytest.raises(ValueError, match="is not a date"):
            parse_date(bad)
    assert range_error(dt.date(2024, 1, 1), dt.date(2024, 1, 1)) is None
    assert range_error(None, dt.date(2024, 1, 1)) is None
