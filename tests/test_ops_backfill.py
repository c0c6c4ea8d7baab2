"""backfill (month chunks, gaps-file driven), bulk planning (per-dataset history) and retry-failed planning."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from test_ops_support import write_bronze

from loaders import calendar, runs
from loaders.config import load_settings
from loaders.datasets import history_start
from loaders.ops import backfill, bulk, gaps, retry, runner


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    return tmp_path


def test_long_ranges_split_at_month_boundaries_and_merge_overlaps() -> None:
    chunks = backfill.plan(
        "stocks_daily",
        [(dt.date(2025, 1, 15), dt.date(2025, 3, 10)), (dt.date(2025, 3, 11), dt.date(2025, 3, 12))],
    )
    assert [(c.start, c.end) for c in chunks] == [
        (dt.date(2025, 1, 15), dt.date(2025, 1, 31)),
        (dt.date(2025, 2, 1), dt.date(2025, 2, 28)),
        (dt.date(2025, 3, 1), dt.date(2025, 3, 12)),
    ]
    across_year = backfill.plan("news", [(dt.date(2024, 12, 20), dt.date(2025, 1, 5))])
    assert [(c.start, c.end) for c in across_year] == [
        (dt.date(2024, 12, 20), dt.date(2024, 12, 31)),
        (dt.date(2025, 1, 1), dt.date(2025, 1, 5)),
    ]


def test_a_failing_chunk_does_not_stop_the_others() -> None:
    calls: list[tuple[dt.date, dt.date, bool]] = []

    def fake(dataset: str, start: dt.date, end: dt.date, *, incremental: bool, max_concurrent: int) -> int:
        calls.append((start, end, incremental))
        if start.month == 2:
            raise RuntimeError("boom")
        return 0

    chunks = backfill.plan("stocks_daily", [(dt.date(2025, 1, 1), dt.date(2025, 3, 31))])
    results = backfill.run_chunks(
        chunks, incremental=True, max_concurrent=2, ingest=fake, show_progress=False
    )
    assert len(calls) == 3 and [r.ok for r in results] == [True, False, True]
    assert "boom" in (results[1].error or "")


def test_backfill_from_a_gaps_file_repairs_exactly_the_missing_sessions(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = calendar.sessions("2025-01-02", "2025-03-31")
    missing = {dt.date(2025, 1, 31), dt.date(2025, 2, 3), dt.date(2025, 3, 14)}
    write_bronze(data_dir, "stocks_daily", [d for d in days if d not in missing])
    gaps_file = data_dir / "gaps.json"
    assert gaps.gaps_command("stocks_daily", None, None, gaps_file) == 0

    calls: list[tuple[dt.date, dt.date, bool]] = []

    def loader(dataset: str, start: dt.date, end: dt.date, *, incremental: bool, max_concurrent: int) -> int:
        calls.append((start, end, incremental))
        write_bronze(data_dir, dataset, calendar.sessions(start, end))
        return 0

    monkeypatch.setattr(runner, "ingest", loader)
    assert backfill.backfill_command(None, None, None, gaps_file) == 0
    # the Jan 31 - Feb 3 range crosses a month boundary: two chunks, full replace
    assert calls == [
        (dt.date(2025, 1, 31), dt.date(2025, 1, 31), False),
        (dt.date(2025, 2, 1), dt.date(2025, 2, 3), False),
        (dt.date(2025, 3, 14), dt.date(2025, 3, 14), False),
    ]
    assert gaps.detect(load_settings(), "stocks_daily", downstream=False).missing == []


def test_backfill_usage_errors(data_dir: Path) -> None:
    assert backfill.backfill_command("stocks_daily", None, None, None) == 2
    assert backfill.backfill_command("stocks_daily", dt.date(2025, 2, 1), dt.date(2025, 1, 1), None) == 2
    bad = data_dir / "bad.json"
    bad.write_text(json.dumps({"schema": "other"}))
    assert backfill.backfill_command(None, None, None, bad) == 2


def test_history_windows() -> None:
    end = dt.date(2025, 12, 31)
    assert history_start("5y", end) == dt.date(2021, 1, 1)
    assert history_start("1m", dt.date(2025, 3, 31)) == dt.date(2025, 3, 1)
    assert history_start("30d", dt.date(2025, 3, 31)) == dt.date(2025, 3, 2)
    with pytest.raises(ValueError, match="expected a positive N"):
        history_start("5w", end)


def test_bulk_plan_respects_each_history_and_the_bucket(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = {
        "us_stocks_sip/day_aggs_v1": (dt.date(2024, 1, 2), dt.date(2025, 12, 31)),
        "us_stocks_sip/minute_aggs_v1": (dt.date(2024, 1, 2), dt.date(2025, 12, 31)),
    }
    monkeypatch.setattr(bulk, "available_range", lambda settings, prefix: bucket.get(prefix))
    items = bulk.plan_bulk(
        load_settings(),
        ["stocks_minute", "stocks_daily", "options_daily", "news", "tickers"],
        bulk.parse_overrides(["stocks_minute=6m"]),
        None,
    )
    by = {i.dataset: i for i in items}
    assert [i.dataset for i in items][:2] == ["tickers", "stocks_daily"]  # reference data first
    assert (by["stocks_daily"].start, by["stocks_daily"].end) == (dt.date(2024, 1, 2), dt.date(2025, 12, 31))
    assert "bucket starts 2024-01-02" in by["stocks_daily"].note  # 5y clipped to what exists
    assert by["stocks_minute"].start == dt.date(2025, 7, 1)
    assert by["options_daily"].start is None and by["options_daily"].note.endswith("skipped")
    assert by["tickers"].start is None and by["news"].start is not None
    argv = by["stocks_minute"].argv(3)
    assert argv[-6:] == ["-s", "2025-07-01", "-e", "2025-12-31", "--max-concurrent", "3"]
    with pytest.raises(ValueError, match="DATASET=N"):
        bulk.parse_overrides(["stocks_minute"])
    with pytest.raises(ValueError, match="unknown dataset"):
        bulk.parse_overrides(["stonks=1y"])


def test_retry_plans_only_unresolved_failures(data_dir: Path) -> None:
    settings = load_settings()
    run = runs.start_run(
        settings.runs_dir, "stocks_daily", "flatfiles", {"start": "2025-01-02", "end": "2025-01-10"}
    )
    run.add("loaded", date="2025-01-02", key="k1")
    run.add("failed", date="2025-01-03", key="k2", error="500")
    run.add("failed", date="2025-01-06", key="k3", error="500")
    run.add("failed", date="2025-01-10", key="k4", error="500")
    run.finish()
    later = runs.start_run(
        settings.runs_dir, "stocks_daily", "flatfiles", {"start": "2025-01-10", "end": "2025-01-10"}
    )
    later.add("loaded", date="2025-01-10", key="k4")
    later.finish()
    rest = runs.start_run(settings.runs_dir, "news", "rest", {"start": "2025-01-01", "end": "2025-01-31"})
    rest.add("failed", page=3, error="timeout")
    rest.finish()
    plans = {p.dataset: p for p in retry.plan_retries(settings)}
    # Jan 3 and Jan 6 are consecutive sessions (weekend between): one range, full replace
    assert plans["stocks_daily"].ranges == [(dt.date(2025, 1, 3), dt.date(2025, 1, 6))]
    assert plans["stocks_daily"].items == 2 and not plans["stocks_daily"].incremental
    assert plans["news"].ranges == [(dt.date(2025, 1, 1), dt.date(2025, 1, 31))] and plans["news"].incremental
    assert [p.dataset for p in retry.plan_retries(settings, ["news"])] == ["news"]


def test_retry_failed_reruns_and_reports_what_still_fails(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    run = runs.start_run(settings.runs_dir, "stocks_daily", "flatfiles", {})
    run.add("failed", date="2025-01-03", key="k2", error="503")
    run.add("failed", date="2025-01-08", key="k3", error="503")
    run.finish()
    calls: list[tuple[dt.date, dt.date, bool]] = []

    def ingest(dataset: str, start: dt.date, end: dt.date, *, incremental: bool, max_concurrent: int) -> int:
        calls.append((start, end, incremental))
        again = runs.start_run(settings.runs_dir, dataset, "flatfiles", {})
        for day in calendar.sessions(start, end):
            # Jan 8 keeps failing, the rest loads
            again.add("failed" if day == dt.date(2025, 1, 8) else "loaded", date=day.isoformat())
        again.finish()
        return 1 if again.failed else 0

    monkeypatch.setattr(runner, "ingest", ingest)
    assert retry.retry_failed_command(None, dry_run=True) == 0 and calls == []
    assert retry.retry_failed_command(None) == 1
    assert calls == [
        (dt.date(2025, 1, 3), dt.date(2025, 1, 3), False),
        (dt.date(2025, 1, 8), dt.date(2025, 1, 8), False),
    ]
    assert [(p.dataset, p.ranges) for p in retry.plan_retries(settings)] == [
        ("stocks_daily", [(dt.date(2025, 1, 8), dt.date(2025, 1, 8))])
    ]
