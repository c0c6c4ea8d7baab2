"""Gap detection: NYSE sessions are the yardstick, holidays and weekends are reported but are not gaps."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from test_ops_support import write_bronze

from loaders import calendar
from loaders.config import load_settings
from loaders.ops import gaps


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    return tmp_path


def test_holidays_and_weekends_are_not_gaps(data_dir: Path) -> None:
    # December 2024 - January 2025: Christmas, New Year's Day and the Carter day of mourning (2025-01-09)
    days = calendar.sessions("2024-12-16", "2025-01-17")
    write_bronze(data_dir, "stocks_daily", days)
    result = gaps.detect(load_settings(), "stocks_daily", downstream=False)
    assert result.missing == []
    holidays = {d.isoformat() for d, _ in result.holidays}
    assert holidays == {"2024-12-25", "2025-01-01", "2025-01-09"}
    assert result.weekend_days == 8


def test_missing_sessions_group_into_ranges_across_weekends(data_dir: Path) -> None:
    days = calendar.sessions("2025-03-03", "2025-03-31")
    missing = {dt.date(2025, 3, 7), dt.date(2025, 3, 10), dt.date(2025, 3, 11), dt.date(2025, 3, 20)}
    write_bronze(data_dir, "stocks_daily", [d for d in days if d not in missing])
    result = gaps.detect(load_settings(), "stocks_daily", downstream=False)
    assert [(r.start, r.end, len(r.sessions)) for r in result.missing] == [
        (dt.date(2025, 3, 7), dt.date(2025, 3, 11), 3),
        (dt.date(2025, 3, 20), dt.date(2025, 3, 20), 1),
    ]
    assert len(result.present) == len(days) - 4


def test_explicit_range_reports_trailing_sessions_and_empty_folders(data_dir: Path) -> None:
    days = calendar.sessions("2025-06-02", "2025-06-13")
    write_bronze(data_dir, "stocks_minute", days[:-2])
    # an empty session folder (e.g. a crashed swap) is not data
    (data_dir / "bronze" / "stocks_minute" / f"session_date={days[-2]}").mkdir()
    result = gaps.detect(
        load_settings(), "stocks_minute", dt.date(2025, 6, 1), dt.date(2025, 6, 15), downstream=False
    )
    assert result.missing_sessions == days[-2:]
    assert result.weekend_days == 5  # Sun 1st, 7-8, 14-15


def test_partition_on_a_holiday_is_flagged_not_counted(data_dir: Path) -> None:
    days = calendar.sessions("2025-07-01", "2025-07-08")
    write_bronze(data_dir, "stocks_daily", [*days, dt.date(2025, 7, 4)])
    result = gaps.detect(load_settings(), "stocks_daily", downstream=False)
    assert result.unexpected == [dt.date(2025, 7, 4)]
    assert len(result.present) == len(days) and result.missing == []


def test_json_round_trips_into_backfill_ranges(data_dir: Path) -> None:
    days = calendar.sessions("2025-02-03", "2025-02-28")
    write_bronze(data_dir, "stocks_daily", [d for d in days if d != dt.date(2025, 2, 18)])
    out = data_dir / "gaps.json"
    assert gaps.gaps_command("stocks_daily", None, None, out) == 0
    assert gaps.gaps_command("stocks_daily", None, None, None, fail_on_gaps=True) == 1
    payload = json.loads(out.read_text())
    assert payload["schema"] == gaps.SCHEMA
    entry = payload["datasets"]["stocks_daily"]
    assert entry["missing"] == [
        {"start": "2025-02-18", "end": "2025-02-18", "sessions": 1, "dates": ["2025-02-18"]}
    ]
    assert {"date": "2025-02-17", "name": "President's Day"} in entry["holidays"]
    assert entry["missing_in_silver"] is None and "does not exist" in entry["silver_note"]
    parsed = gaps.read_gaps_file(out)
    assert [(e.dataset, e.ranges) for e in parsed] == [
        ("stocks_daily", [(dt.date(2025, 2, 18), dt.date(2025, 2, 18))])
    ]


def test_bad_gaps_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "g.json"
    bad.write_text(
        json.dumps({"schema": gaps.SCHEMA, "datasets": {"stocks_daily": {"missing": [{"start": "x"}]}}})
    )
    with pytest.raises(ValueError, match=r"datasets\.stocks_daily\.missing\[0\]"):
        gaps.read_gaps_file(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        gaps.read_gaps_file(bad)


def test_silver_and_gold_lag_behind_bronze(data_dir: Path) -> None:
    import duckdb
    import numpy as np

    days = calendar.sessions("2025-04-01", "2025-04-11")
    write_bronze(data_dir, "stocks_daily", days)
    con = duckdb.connect(str(data_dir / "quantmini.duckdb"))
    con.execute("create schema main_marts")
    con.execute(
        "create table main_marts.fct_stock_features_daily (ticker varchar, session_date date, adj_close double)"
    )
    con.executemany(
        "insert into main_marts.fct_stock_features_daily values ('AAPL', ?, 1.0)", [[d] for d in days[:-1]]
    )
    con.close()
    gold = data_dir / "gold" / "qlib"
    (gold / "calendars").mkdir(parents=True)
    (gold / "calendars" / "day.txt").write_text("\n".join(d.isoformat() for d in days) + "\n")
    (gold / "features" / "aapl").mkdir(parents=True)
    values = np.array([0] + [1.0] * (len(days) - 1) + [np.nan], dtype="<f4")
    values.tofile(gold / "features" / "aapl" / "close.day.bin")
    result = gaps.detect(load_settings(), "stocks_daily")
    assert result.missing == []
    assert result.silver_relation == "main_marts.fct_stock_features_daily"
    assert [r.sessions for r in result.missing_in_silver or []] == [[days[-1]]]
    assert [r.sessions for r in result.missing_in_gold or []] == [[days[-1]]]
    shutil.rmtree(gold / "calendars")
    assert gaps.detect(load_settings(), "stocks_daily").missing_in_gold is None


def test_rest_dataset_is_a_clear_error(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="REST dataset"):
        gaps.detect(load_settings(), "news")
