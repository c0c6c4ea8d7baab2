"""What `quantmini ingest` shows: live progress while it runs (a bar in a terminal, plain lines without
one), then a summary of a few lines whatever the range, listing only what went wrong."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from loaders.calendar import sessions
from loaders.flatfiles.commands import EXIT_FAILED, ingest_command
from loaders.progress import IngestProgress
from loaders.rest.commands import ingest_command as rest_ingest

ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def _ingest(dataset: str, start: dt.date, end: dt.date) -> int:
    return ingest_command(dataset, start, end, incremental=True, max_concurrent=3)


def test_in_a_terminal_the_ingest_draws_a_live_bar_of_files_bytes_and_rows(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich's switch: stderr is drawn on as a terminal
    days = sessions("2025-11-03", "2025-11-14")
    assert _ingest("stocks_daily", days[0], days[-1]) == 0
    raw = capsys.readouterr().err
    assert ANSI.search(raw), "no terminal drawing at all"
    text = ANSI.sub("", raw)
    # the bar's last frame: every file done, with bytes, rows and rates
    frame = re.search(
        rf"stocks_daily.*{len(days)}/{len(days)} files, [\d.]+ KiB/[\d.]+ KiB, ([\d,]+) rows", text
    )
    assert frame, text[-3000:]
    assert int(frame.group(1).replace(",", "")) > 0
    assert "rows/s" in text and "/s" in text


def test_a_plain_progress_line_comes_every_interval_without_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=1000, color_system=None)
    with IngestProgress(console, "stocks_minute", files=4, size=4 * 1024**2, interval=0.05) as progress:
        progress.advance(files=1, size=1024**2, rows=390)
        time.sleep(1.0)
    lines = out.getvalue().splitlines()
    assert progress.lines >= 2 and len(lines) == progress.lines
    assert lines[0].startswith("stocks_minute: 1/4 files, 1.0 MiB/4.0 MiB, 390 rows, ")
    assert "elapsed, ETA 0:00:" in lines[0] and not ANSI.search(out.getvalue())


def test_a_quarter_of_sessions_is_summarised_in_a_few_lines(
    sandbox: Any, sandbox_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    days = sessions("2025-10-01", sandbox.market.today)
    assert _ingest("stocks_daily", days[0], days[-1]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) <= 3, err
    assert f"{len(days)} session(s) {days[0]}..{days[-1]} in " in err
    assert f"stocks_daily: loaded {len(days)}, skipped 0, not published 0, pending 0, failed 0; " in err
    assert "downloaded " in err and "recorded in the ledger" in err
    assert len(ISO.findall(err)) == 2  # the span only: no line per session
    assert _ingest("stocks_daily", days[0], days[-1]) == 0
    assert f"loaded 0, skipped {len(days)}, not published 0" in capsys.readouterr().err


def test_the_summary_lists_only_the_failed_sessions(
    sandbox_env: dict[str, str],
    faults: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    days = sessions("2025-11-03", "2025-11-14")
    gap = days[4]
    faults.update(missing_days=[gap.isoformat()])
    monkeypatch.setenv("QM_PUBLISH_GRACE_HOURS", "0")
    assert _ingest("stocks_daily", days[0], days[-1]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"loaded {len(days) - 1}, skipped 0, not published 0, pending 0, failed 1; " in err
    assert "stocks_daily: 1 session(s) failed:" in err
    [row] = [line for line in err.splitlines() if gap.isoformat() in line]
    assert "failed" in row and "404" in row
    assert set(ISO.findall(err)) == {days[0].isoformat(), days[-1].isoformat(), gap.isoformat()}


def test_without_a_terminal_ingest_writes_plain_progress_lines_and_its_summary(
    sandbox_env: dict[str, str],
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS")}
    env.update(sandbox_env, QM_PROGRESS_SECONDS="0.01")
    days = sessions("2025-12-01", "2025-12-05")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loaders.cli",
            "ingest",
            "-t",
            "stocks_minute",
            "-s",
            str(days[0]),
            "-e",
            str(days[-1]),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not ANSI.search(done.stderr)
    progress = [line for line in done.stderr.splitlines() if re.match(r"stocks_minute: \d+/5 files, ", line)]
    assert progress, done.stderr[-3000:]
    assert "rows/s" in progress[-1] and "elapsed" in progress[-1]
    assert f"stocks_minute: loaded {len(days)}, skipped 0" in done.stderr


def test_rest_ingest_counts_pages_and_rows_live(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    code = rest_ingest(
        "splits",
        dt.date(2025, 10, 1),
        dt.date(2025, 12, 19),
        incremental=True,
        max_concurrent=2,
        rate_limit=None,
        tickers_file=None,
        include_short_data=False,
        backfill_years=None,
    )
    assert code == 0
    text = ANSI.sub("", capsys.readouterr().err)
    frames = re.findall(r"([\d,]+) pages, ([\d,]+) requests, ([\d,]+) rows", text)
    assert frames, text[-3000:]
    pages, requests, rows = (int(n.replace(",", "")) for n in frames[-1])  # the last frame: the run's end
    assert pages >= 1 and requests >= pages and rows >= 1
