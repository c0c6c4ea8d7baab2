"""refresh: which datasets a mode covers, the lock against overlapping runs, exit codes, the summary file."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from filelock import FileLock
from test_ops_support import write_bronze

from loaders.config import load_settings
from loaders.ops import refresh, runner


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    return tmp_path


def _rest_bronze(data_dir: Path, dataset: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = data_dir / "bronze" / dataset / dataset
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a"]}), folder / "part-0.parquet")


def test_daily_covers_daily_datasets_weekly_adds_slow_ones(data_dir: Path) -> None:
    write_bronze(data_dir, "stocks_daily", [dt.date(2025, 1, 2)])
    for name in ("splits", "fundamentals", "options_contracts"):
        _rest_bronze(data_dir, name)
    settings = load_settings()
    assert refresh.select_datasets(settings, "daily", None) == ["stocks_daily", "splits"]
    assert refresh.select_datasets(settings, "weekly", None) == [
        "stocks_daily",
        "splits",
        "fundamentals",
        "options_contracts",
    ]
    assert refresh.select_datasets(settings, "daily", ["fundamentals"]) == ["fundamentals"]


def test_nothing_loaded_is_a_usage_error(data_dir: Path) -> None:
    assert refresh.refresh_command("daily", None) == refresh.EXIT_USAGE


def test_a_second_refresh_does_not_start_while_one_holds_the_lock(data_dir: Path) -> None:
    write_bronze(data_dir, "stocks_daily", [dt.date(2025, 1, 2)])
    with FileLock(str(data_dir / ".refresh.lock")):
        assert refresh.refresh_command("daily", None) == refresh.EXIT_LOCKED


def test_first_failing_stage_sets_the_exit_code_and_later_stages_still_run(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_bronze(data_dir, "stocks_daily", [dt.date(2025, 1, 2)])
    _rest_bronze(data_dir, "splits")
    calls: list[str] = []

    def ingest(dataset: str, start: object, end: object, *, incremental: bool, max_concurrent: int) -> int:
        calls.append(dataset)
        if dataset == "stocks_daily":
            raise RuntimeError("S3 unreachable")
        return 0

    monkeypatch.setattr(refresh, "ingest_window", lambda settings, dataset: (None, None))
    monkeypatch.setattr(runner, "ingest", ingest)
    monkeypatch.setattr(
        runner,
        "dbt_build",
        lambda settings, select=None: runner.DbtOutcome(False, 0.1, ["model.x: error"], ""),
    )
    code = refresh.refresh_command("daily", None, validate=False)
    assert code == refresh.EXIT_INGEST and calls == ["stocks_daily", "splits"]
    summary = json.loads(next((data_dir / "logs" / "refresh").glob("*-daily.json")).read_text())
    steps = {s["name"]: s for s in summary["steps"]}
    assert summary["exit_code"] == 1
    assert (
        not steps["ingest stocks_daily"]["ok"] and "S3 unreachable" in steps["ingest stocks_daily"]["detail"]
    )
    assert steps["ingest splits"]["ok"] and not steps["dbt build"]["ok"]
    assert "gold export" not in steps  # nothing to export from a failed build

    monkeypatch.setattr(runner, "ingest", lambda *a, **k: 0)
    assert refresh.refresh_command("daily", None, validate=False) == refresh.EXIT_DBT


def test_weekly_backfills_gaps_before_building(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from loaders import calendar

    days = calendar.sessions("2025-03-03", "2025-03-14")
    write_bronze(data_dir, "stocks_daily", [d for d in days if d != dt.date(2025, 3, 7)])
    calls: list[tuple[object, object, bool]] = []

    def ingest(dataset: str, start: object, end: object, *, incremental: bool, max_concurrent: int) -> int:
        calls.append((start, end, incremental))
        if not incremental:
            write_bronze(data_dir, dataset, calendar.sessions(start, end))  # type: ignore[arg-type]
        return 0

    monkeypatch.setattr(refresh, "ingest_window", lambda settings, dataset: (None, None))
    monkeypatch.setattr(runner, "ingest", ingest)
    assert refresh.refresh_command("weekly", None, build=False, validate=False) == refresh.EXIT_OK
    assert calls == [(None, None, True), (dt.date(2025, 3, 7), dt.date(2025, 3, 7), False)]
    summary = json.loads(next((data_dir / "logs" / "refresh").glob("*-weekly.json")).read_text())
    assert [s["name"] for s in summary["steps"]] == ["ingest stocks_daily", "gaps+backfill stocks_daily"]
    assert summary["steps"][1]["detail"] == "1 missing sessions, 0 failed chunks"
