"""Settings precedence and secret hygiene; NYSE calendar facts the loaders rely on."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loaders import calendar
from loaders.config import DBT_PROJECT_DIR_SETTING, Secret, dbt_project_dir, load_settings


def test_secret_never_prints_its_value():
    secret = Secret("top-secret-key")
    assert "top-secret-key" not in repr(secret)
    assert "top-secret-key" not in str(secret)
    assert "top-secret-key" not in f"{secret}"
    assert secret.reveal() == "top-secret-key"


def test_settings_repr_and_redact_hide_every_secret(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYGON_API_KEY", "k-123")
    monkeypatch.setenv("POLYGON_S3_ACCESS_KEY_ID", "AKIA-XYZ")
    monkeypatch.setenv("POLYGON_S3_SECRET_ACCESS_KEY", "s3-secret")
    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    settings = load_settings()
    for raw in ("k-123", "AKIA-XYZ", "s3-secret"):
        assert raw not in repr(settings)
    message = "GET https://api.polygon.io/v3?apiKey=k-123 with AKIA-XYZ/s3-secret failed"
    assert settings.redact(message) == "GET https://api.polygon.io/v3?apiKey=*** with ***/*** failed"
    assert settings.data_dir == tmp_path.resolve()


def test_massive_api_key_alias_and_defaults(monkeypatch):
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.setenv("MASSIVE_API_KEY", "massive-key")
    monkeypatch.delenv("POLYGON_API_URL", raising=False)
    settings = load_settings()
    assert settings.api_key.reveal() == "massive-key"
    assert settings.api_url == "https://api.polygon.io"


def _api_key_in_fresh_process(cwd, env) -> str:
    # dlt caches its config providers per process, so each case runs as a real CLI process would.
    code = "from loaders.config import load_settings; print(load_settings().api_key.reveal())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_secrets_toml_is_read_when_no_environment_variable(tmp_path):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text('polygon_api_key = "from-toml"\n')
    env = {k: v for k, v in os.environ.items() if k not in {"POLYGON_API_KEY", "MASSIVE_API_KEY"}}
    assert _api_key_in_fresh_process(tmp_path, env) == "from-toml"
    assert _api_key_in_fresh_process(tmp_path, {**env, "POLYGON_API_KEY": "from-env"}) == "from-env"


def test_dbt_project_defaults_to_the_shipped_one_whatever_the_current_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(DBT_PROJECT_DIR_SETTING, raising=False)
    (tmp_path / "dbt_project.yml").write_text("name: someone_elses\n")
    monkeypatch.chdir(tmp_path)
    shipped = Path(__file__).resolve().parents[1]
    assert dbt_project_dir() == shipped
    assert (shipped / "dbt_project.yml").is_file()


def test_dbt_project_setting_wins_and_a_wrong_one_names_the_setting(monkeypatch, tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: quantmini\n")
    monkeypatch.setenv(DBT_PROJECT_DIR_SETTING, str(tmp_path))
    assert dbt_project_dir() == tmp_path.resolve()
    monkeypatch.setenv(DBT_PROJECT_DIR_SETTING, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"QM_DBT_PROJECT_DIR=.*nowhere.*set QM_DBT_PROJECT_DIR"):
        dbt_project_dir()


def test_sessions_skip_weekends_and_holidays():
    days = calendar.sessions("2025-12-22", "2026-01-05")
    assert dt.date(2025, 12, 25) not in days  # Christmas
    assert dt.date(2026, 1, 1) not in days  # New Year
    assert all(d.weekday() < 5 for d in days)
    assert dt.date(2025, 12, 25) in calendar.holidays("2025-12-22", "2026-01-05")


@pytest.mark.parametrize(
    ("day", "minutes", "close_utc"),
    [("2025-11-28", 210, "18:00"), ("2025-12-01", 390, "21:00"), ("2025-07-03", 210, "17:00")],
)
def test_half_days_close_at_one_pm_new_york(day, minutes, close_utc):
    grid = calendar.regular_minutes(day)
    assert len(grid) == minutes
    _, close = calendar.session_bounds(day)
    assert close.strftime("%H:%M") == close_utc


def test_previous_and_next_session_cross_holidays():
    assert calendar.previous_session("2025-12-26") == dt.date(2025, 12, 24)
    assert calendar.next_session("2025-12-24") == dt.date(2025, 12, 26)
    assert calendar.previous_session("2025-12-25") == dt.date(2025, 12, 24)


def test_session_list_matches_exchange_calendars_and_is_cached(tmp_path, monkeypatch):
    """Session answers come from a cached list equal to exchange_calendars' own; a later process reads
    the cache and never imports pandas or exchange_calendars for them."""
    import datetime as dt
    import json
    import os
    import subprocess
    import sys

    import exchange_calendars as xcals
    import pandas as pd

    from loaders import calendar

    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    calendar._session_days.cache_clear()
    try:
        xnys = xcals.get_calendar("XNYS", start="2019-01-02", end="2026-12-31")
        expected = [ts.date() for ts in xnys.sessions_in_range("2019-06-01", "2026-06-30")]
        assert calendar.sessions("2019-06-01", "2026-06-30") == expected
        for day in (dt.date(2024, 7, 4), dt.date(2024, 7, 5), dt.date(2025, 1, 1), dt.date(2025, 11, 29)):
            ts = pd.Timestamp(day)
            assert calendar.is_session(day) == xnys.is_session(ts)
            prev = (
                xnys.date_to_session(ts, "previous") if not xnys.is_session(ts) else xnys.previous_session(ts)
            )
            nxt = xnys.date_to_session(ts, "next") if not xnys.is_session(ts) else xnys.next_session(ts)
            assert calendar.previous_session(day) == prev.date()
            assert calendar.next_session(day) == nxt.date()
        assert list((tmp_path / "cache").glob("nyse-sessions-*.txt"))
    finally:
        calendar._session_days.cache_clear()
    code = (
        "import json, sys\n"
        "from loaders import calendar\n"
        "days = calendar.sessions('2025-12-20', '2026-01-06')\n"
        "print(json.dumps([[d.isoformat() for d in days], 'exchange_calendars' in sys.modules, 'pandas' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "QM_DATA_DIR": str(tmp_path)},
    )
    days, imported_xcals, imported_pandas = json.loads(out.stdout)
    assert days == [d.isoformat() for d in calendar.sessions("2025-12-20", "2026-01-06")]
    assert not imported_xcals and not imported_pandas


def test_sessions_file_holds_the_exchange_calendar_and_is_rewritten_only_when_it_changes(
    tmp_path: Path,
) -> None:
    import pyarrow.parquet as pq

    from loaders.calendar import sessions, write_sessions_file

    path = write_sessions_file(tmp_path, today=dt.date(2024, 6, 3))
    table = pq.read_table(path)
    days = table.column("session_date").to_pylist()
    assert days == sessions(days[0], dt.date(2025, 12, 31)), "every session through the end of next year"
    rows = {row["session_date"]: row for row in table.to_pylist()}
    black_friday = rows[dt.date(2024, 11, 29)]
    assert black_friday["regular_close_at"] - black_friday["regular_open_at"] == dt.timedelta(
        hours=3, minutes=30
    )
    assert dt.date(2024, 12, 25) not in rows
    written = path.stat().st_mtime_ns
    write_sessions_file(tmp_path, today=dt.date(2024, 9, 1))
    assert path.stat().st_mtime_ns == written, "same calendar: the file is left alone"
    write_sessions_file(tmp_path, today=dt.date(2025, 1, 2))
    assert (
        pq.read_table(path).column("session_date").to_pylist()[-1] == sessions("2026-12-01", "2026-12-31")[-1]
    )
