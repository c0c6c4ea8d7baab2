"""On a daily refresh the data tests check the sessions that changed; otherwise all history."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import run_dbt, write_flatfile_session, write_market_sessions

from loaders.config import load_settings
from loaders.ops.inventory import session_partitions
from loaders.ops.refresh import first_changed_session, session_test_scope
from loaders.sandbox.market import Market, MarketConfig

pytestmark = pytest.mark.xdist_group("dbt_silver")

MODELS = ["--select", "+fct_stock_features_daily", "--exclude", "resource_type:unit_test"]


def _market() -> Market:
    return Market(MarketConfig(seed=3, start=dt.date(2024, 1, 2), end=dt.date(2024, 2, 29), tickers=3))


def test_first_changed_session_is_the_oldest_new_or_reloaded_session(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    market = _market()
    days = market.sessions
    write_market_sessions(tmp_path, market, days[:-2], options=False)
    settings = load_settings()
    before = {"stocks_daily": session_partitions(settings, "stocks_daily")}
    assert first_changed_session(settings, before) is None
    assert session_test_scope(settings, "daily", before) == {
        "test_sessions_from": (days[-3] + dt.timedelta(days=1)).isoformat(),
        "test_window_days": 30,
    }, "nothing changed: no session is in scope"
    write_market_sessions(tmp_path, market, days[-2:], options=False)
    assert first_changed_session(settings, before) == days[-2]
    write_flatfile_session(tmp_path, "stocks_daily", days[5], market.stock_day_aggs(days[5]), generation=1)
    assert first_changed_session(settings, before) == days[5], "a re-loaded session counts"
    assert session_test_scope(settings, "daily", before) == {
        "test_sessions_from": days[5].isoformat(),
        "test_window_days": 30,
    }
    assert session_test_scope(settings, "weekly", before) == {}, "the weekly refresh checks everything"
    monkeypatch.setenv("QM_REFRESH_WINDOW_DAYS", "0")  # REST datasets listed whole daily: tested whole
    assert session_test_scope(settings, "daily", before) == {"test_sessions_from": days[5].isoformat()}


def test_data_tests_see_only_the_sessions_in_scope(tmp_path: Path) -> None:
    market = _market()
    days = market.sessions
    write_market_sessions(tmp_path, market, days, options=False)
    work = tmp_path / "dbt"
    run_dbt(["run", *MODELS], tmp_path, work)
    with duckdb.connect(str(tmp_path / "quantmini.duckdb")) as con:
        # a duplicated row in an old session breaks the mart's grain test
        con.execute(
            f"insert into main.fct_stock_features_daily select * from main.fct_stock_features_daily "
            f"where session_date = date '{days[3]}' limit 1"
        )
    recent = json.dumps({"test_sessions_from": days[-5].isoformat()})
    run_dbt(["test", *MODELS, "--vars", recent], tmp_path, work)  # the old session is out of scope
    with pytest.raises(AssertionError, match="unique_combination_of_columns_fct_stock_features_daily"):
        run_dbt(["test", *MODELS], tmp_path, work)  # everything is checked without the var
    older = json.dumps({"test_sessions_from": days[2].isoformat()})
    with pytest.raises(AssertionError, match="unique_combination_of_columns_fct_stock_features_daily"):
        run_dbt(["test", *MODELS, "--vars", older], tmp_path, work)
    compiled = [path.read_text() for path in (work / "target" / "run").rglob("*.sql")]
    assert any(f"session_date >= cast('{days[2]}' as date)" in text for text in compiled)
    singular = (
        work
        / "target"
        / "run"
        / "quantmini"
        / "tests"
        / "dbt"
        / "assert_adj_factor_is_one_on_latest_session.sql"
    )
    assert f"session_date >= cast('{days[2]}' as date)" in singular.read_text(), (
        "singular tests are scoped too"
    )
    # a REST dataset dated by another column is tested over the window the daily refresh listed again
    windowed = json.dumps({"test_sessions_from": days[-5].isoformat(), "test_window_days": 30})
    run_dbt(["test", "--select", "stg_polygon__dividends", "--vars", windowed], tmp_path, work)
    start = (days[-5] - dt.timedelta(days=30)).isoformat()
    tests = (work / "target" / "run").rglob("*stg_polygon__dividends*.sql")
    compiled = [path.read_text() for path in tests if path.parent.name.endswith(".yml")]
    assert compiled and all(f"ex_dividend_date >= cast('{start}' as date)" in text for text in compiled)
