"""`dbt build` (the whole project, gold export included) at every stage a new lake goes through.

A user may run `dbt build` before anything is loaded, after the first session of the first dataset, or
after one session of every dataset; each of these must end green, with the models simply holding what
bronze holds so far and the export saying when it had nothing to do.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from dbt_fixtures import run_dbt, write_flatfile_session, write_market_sessions
from test_rest_ingest import Server, data_dir, ingest, server  # noqa: F401  (fixtures)

from loaders.datasets import REST_DATASETS
from loaders.sandbox.market import Market, MarketConfig

pytestmark = pytest.mark.xdist_group("dbt_stages")


def _query(data: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data / "quantmini.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _export_summary(data: Path) -> list[tuple]:
    return _query(data, "select freq, export_mode, notes from main_gold.qlib_export order by freq")


def _market() -> Market:
    return Market(
        MarketConfig(
            seed=5,
            start=dt.date(2025, 1, 2),
            end=dt.date(2025, 1, 10),
            tickers=4,
            option_underlyings=1,
            contracts_per_underlying=2,
        )
    )


def test_build_before_the_data_dir_exists_creates_it_and_the_export_says_it_skipped(tmp_path: Path) -> None:
    data = tmp_path / "not-yet" / "data"
    run_dbt(["build"], data, tmp_path / "dbt")
    assert (data / "quantmini.duckdb").is_file()
    [(freq, mode, notes)] = _export_summary(data)
    assert (freq, mode) == ("day", "skipped")
    assert "no rows" in notes
    assert not (data / "gold").exists(), "an empty silver must not create (or clear) gold"


def test_build_with_nothing_loaded_keeps_existing_gold_untouched(tmp_path: Path) -> None:
    calendar = tmp_path / "gold" / "qlib" / "calendars" / "day.txt"
    calendar.parent.mkdir(parents=True)
    calendar.write_text("2025-01-02\n")
    run_dbt(["build"], tmp_path, tmp_path / "dbt")
    assert [mode for _, mode, _ in _export_summary(tmp_path)] == ["skipped"]
    assert calendar.read_text() == "2025-01-02\n"


def test_build_with_exactly_one_stocks_daily_session(tmp_path: Path) -> None:
    market = _market()
    day = market.sessions[0]
    write_market_sessions(tmp_path, market, [day], options=False)
    run_dbt(["build"], tmp_path, tmp_path / "dbt")
    # the session calendar is the exchange calendar's, whatever bronze holds; the marts hold the one session
    assert _query(
        tmp_path, f"select count(*) from main_intermediate.int_trading_sessions where session_date = '{day}'"
    ) == [(1,)]
    assert _query(tmp_path, "select min(session_date), max(session_date) from fct_stock_features_daily") == [
        (day, day)
    ]
    assert _query(tmp_path, "select count(distinct ticker) from fct_stock_features_daily") == [
        (market.stock_day_aggs(day).num_rows,)
    ]
    assert ("day", "full") in [(f, m) for f, m, _ in _export_summary(tmp_path)]
    assert (tmp_path / "gold" / "qlib" / "calendars" / "day.txt").read_text().split() == [day.isoformat()]


def test_build_with_one_session_of_every_dataset(server: Server, data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    market = server.market
    day = market.sessions[0]
    write_market_sessions(data_dir, market, [day], minute_days=[day])
    write_flatfile_session(data_dir, "options_minute", day, market.option_minute_aggs(day))
    for dataset in REST_DATASETS:
        ingest(dataset, day, day)
    run_dbt(["build"], data_dir, tmp_path / "dbt")
    for relation in (
        "fct_stock_features_daily",
        "fct_stock_minute_features_daily",
        "fct_option_contracts_daily",
        "main_staging.stg_polygon__options_minute",
    ):
        assert _query(data_dir, f"select distinct session_date from {relation}") == [(day,)], relation
    assert [(f, m) for f, m, _ in _export_summary(data_dir)] == [("1min", "full"), ("day", "full")]


def _freshness(data: Path, work: Path) -> dict[str, tuple[str, dt.datetime]]:
    result = run_dbt(["source", "freshness"], data, work)
    return {
        f"{r.node.source_name}.{r.node.name}": (str(r.status).rsplit(".", 1)[-1].lower(), r.max_loaded_at)
        for r in result.result.results
    }


def test_source_freshness_warns_for_never_loaded_datasets_and_measures_loaded_ones(tmp_path: Path) -> None:
    """`dbt source freshness` exits 0 at every stage: a source with no file yet warns (never loaded)
    instead of failing on the missing glob, and a loaded one reports its newest bar."""
    empty = _freshness(tmp_path / "empty", tmp_path / "dbt-empty")
    assert "polygon.stocks_daily" in empty and "polygon.news" in empty
    assert {status for status, _ in empty.values()} == {"warn"}
    assert {loaded.year for _, loaded in empty.values()} == {1}  # dbt's "infinitely long ago"

    market = _market()
    day = market.sessions[0]
    partial_dir = tmp_path / "partial"
    write_market_sessions(partial_dir, market, [day], options=False)
    partial = _freshness(partial_dir, tmp_path / "dbt-partial")
    status, loaded = partial["polygon.stocks_daily"]
    assert status == "warn"  # a 2025 session is older than warn_after, and is measured, not "never loaded"
    assert loaded.date() == day
    assert partial["polygon.news"][1].year == 1
    assert partial["polygon.options_daily"][0] == "warn"
