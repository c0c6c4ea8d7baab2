"""cleanup (dry run by default, bronze only on request) and schedule (idempotent marked crontab block)."""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

import pytest
from test_ops_support import write_bronze

from loaders.config import load_settings
from loaders.ops import cleanup, schedule


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _landing(data_dir: Path, rel: str, age_days: float) -> Path:
    path = data_dir / "landing" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 100)
    stamp = time.time() - age_days * 86400
    os.utime(path, (stamp, stamp))
    return path


def test_cleanup_is_a_dry_run_unless_applied(data_dir: Path) -> None:
    old = _landing(data_dir, "flatfiles/us_stocks_sip/day_aggs_v1/2025/01/2025-01-02.csv.gz", 40)
    meta = _landing(data_dir, "flatfiles/_meta/us_stocks_sip/day_aggs_v1/2025/01/2025-01-02.csv.gz.json", 40)
    new = _landing(data_dir, "flatfiles/us_stocks_sip/day_aggs_v1/2025/03/2025-03-03.csv.gz", 2)
    rest = _landing(data_dir, "rest/news/abc/20250101T000000Z/page-0001.json", 31)
    write_bronze(data_dir, "stocks_daily", [dt.date(2025, 1, 2)])
    plan = cleanup.plan_cleanup(load_settings(), 30)
    assert set(plan.landing_files) == {old, meta, rest} and plan.landing_bytes == 300
    assert cleanup.cleanup_command(keep_days=30) == 0
    assert old.exists() and rest.exists()
    assert cleanup.cleanup_command(keep_days=30, apply=True) == 0
    assert not old.exists() and not meta.exists() and not rest.exists() and new.exists()
    assert not (data_dir / "landing" / "rest").exists()  # emptied folders go too
    assert (data_dir / "bronze" / "stocks_daily" / "session_date=2025-01-02").is_dir()


def test_cleanup_touches_bronze_only_when_asked(data_dir: Path) -> None:
    recent = dt.date.today() - dt.timedelta(days=3)
    write_bronze(data_dir, "stocks_daily", [dt.date(2020, 1, 2), recent])
    plan = cleanup.plan_cleanup(load_settings(), 10, bronze=True)
    assert [p.name for p in plan.bronze_partitions] == ["session_date=2020-01-02"]
    # no silver built from it yet: its rows would exist nowhere, so cleanup refuses unless told
    assert cleanup.cleanup_command(keep_days=10, apply=True, bronze=True) == 1
    assert (data_dir / "bronze" / "stocks_daily" / "session_date=2020-01-02").is_dir()
    assert cleanup.cleanup_command(keep_days=10, apply=True, bronze=True, allow_history_loss=True) == 0
    remaining = sorted(p.name for p in (data_dir / "bronze" / "stocks_daily").iterdir())
    assert remaining == [f"session_date={recent.isoformat()}"]


def test_schedule_install_is_idempotent_and_remove_keeps_other_lines(data_dir: Path, tmp_path: Path) -> None:
    crontab = tmp_path / "crontab"
    crontab.write_text("MAILTO=ops@example.com\n0 1 * * * /usr/bin/backup\n")
    assert schedule.install_command(crontab_file=crontab) == 0
    once = crontab.read_text()
    assert schedule.install_command(crontab_file=crontab) == 0
    assert crontab.read_text() == once
    assert once.count(schedule.BEGIN) == 1
    lines = once.splitlines()
    daily = next(line for line in lines if "refresh daily" in line)
    weekly = next(line for line in lines if "refresh weekly" in line)
    assert daily.startswith("30 6 * * 2-6 ") and weekly.startswith("0 8 * * 0 ")
    assert f"QM_DATA_DIR={data_dir.resolve()}" in daily
    assert f" {Path(sys.executable).parent / 'quantmini'} refresh daily" in daily  # this environment's
    assert "POLYGON" not in once  # secrets stay in .dlt/secrets.toml, never in the crontab
    assert schedule.install_command(daily_at="05:15", crontab_file=crontab) == 0
    changed = crontab.read_text()
    assert changed.count(schedule.BEGIN) == 1 and "15 5 * * 2-6 " in changed
    assert schedule.remove_command(crontab_file=crontab) == 0
    assert crontab.read_text() == "MAILTO=ops@example.com\n0 1 * * * /usr/bin/backup\n"
    assert schedule.remove_command(crontab_file=crontab) == 0


def test_schedule_rejects_a_bad_time(data_dir: Path, tmp_path: Path) -> None:
    crontab = tmp_path / "crontab"
    assert schedule.install_command(daily_at="25:00", crontab_file=crontab) == 2
    assert not crontab.exists()
