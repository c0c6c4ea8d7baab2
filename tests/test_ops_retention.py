"""Retention: `cleanup --bronze` then the daily refresh keeps silver's and gold's history.

Two copies of one lake are built; one has its old bronze sessions removed. Both then receive the same
new session and a new split that moves every earlier factor, and are refreshed. The cleaned lake must
stay green (dbt build, gold export, validate) and hold the same silver rows and gold values as the lake
that kept all of bronze: the removed sessions are kept, re-adjusted for the new split, and still feed
the lookback windows of later sessions. A full refresh, which could not rebuild them, is refused.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dbt_fixtures import (
    contract_references,
    run_dbt,
    write_flatfile_session,
    write_market_sessions,
    write_rest_records,
)

from loaders.config import load_settings
from loaders.ops import cleanup, layers, refresh, runner, validate
from loaders.sandbox.market import Market, MarketConfig

pytestmark = pytest.mark.xdist_group("dbt_retention")

CUTOFF_INDEX = 40  # sessions before this one leave bronze
SPLIT_TO = 4  # a 1-for-4 split on the new session


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(
        MarketConfig(
            seed=21,
            start=dt.date(2024, 10, 1),
            end=dt.date(2025, 3, 31),
            tickers=6,
            option_underlyings=1,
            contracts_per_underlying=4,
        )
    )


def _rows(data: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(data / "quantmini.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _features(data: Path) -> list[tuple]:
    return _rows(
        data,
        "select ticker, session_date, adj_factor, adj_close, return_1d, return_60d, realized_volatility_60d,"
        " atr_14, rsi_14 from fct_stock_features_daily order by ticker, session_date",
    )


def _gold(data: Path) -> dict[str, np.ndarray]:
    root = data / "gold" / "qlib"
    return {
        str(p.relative_to(root)): np.fromfile(p, dtype="<f4")
        for p in sorted((root / "features").glob("*/*.day.bin"))
    } | {
        "calendar": np.array((root / "calendars" / "day.txt").read_text().split()),
        "instruments": np.array((root / "instruments" / "all.txt").read_text().split()),
    }


def _after_split(bars: pa.Table, ticker: str, ratio: int) -> pa.Table:
    """The session's bars with `ticker` trading after a 1-for-`ratio` split (prices divided, volume multiplied)."""
    hit = pc.equal(bars.column("ticker"), ticker)
    columns = {}
    for name in bars.column_names:
        column = bars.column(name)
        if name in ("open", "high", "low", "close", "vwap"):
            column = pc.if_else(hit, pc.divide(column, pa.scalar(float(ratio))), column)
        elif name == "volume":
            column = pc.if_else(hit, pc.multiply(column, pa.scalar(ratio, column.type)), column)
        columns[name] = column
    return pa.table(columns)


def _refresh(
    data: Path, monkeypatch: pytest.MonkeyPatch, new_day: dt.date, market: Market, ticker: str
) -> int:
    """`refresh daily` whose ingest step writes the new session, as the flat-file ingest would."""

    def ingest(dataset: str, *args: object, **kwargs: object) -> int:
        if dataset == "stocks_daily":
            bars = _after_split(market.stock_day_aggs(new_day), ticker, SPLIT_TO)
            write_flatfile_session(data, "stocks_daily", new_day, bars, 1)
            write_flatfile_session(data, "options_daily", new_day, market.option_day_aggs(new_day), 1)
        return 0

    monkeypatch.setenv("QM_DATA_DIR", str(data))
    monkeypatch.setattr(refresh, "ingest_window", lambda settings, dataset: (None, None))
    monkeypatch.setattr(runner, "ingest", ingest)
    summary = refresh.run_refresh(load_settings(), "daily", ["stocks_daily"])
    assert summary.code == 0, [(s.name, s.detail) for s in summary.steps if not s.ok]
    return summary.code


def test_refresh_after_cleanup_bronze_keeps_silver_and_gold_history(
    market: Market, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, cleaned = tmp_path / "kept", tmp_path / "cleaned"
    sessions, new_day = market.sessions[:-1], market.sessions[-1]
    write_market_sessions(kept, market, sessions, minute_days=sessions[-2:])
    write_rest_records(kept, "splits", market.splits())
    write_rest_records(kept, "dividends", market.dividends())
    write_rest_records(kept, "options_contracts", contract_references(market, market.sessions))
    run_dbt(["build"], kept, kept / "dbt")
    shutil.copytree(kept, cleaned)

    # remove the old bronze sessions of the cleaned copy, through the command users run
    cutoff = sessions[CUTOFF_INDEX]
    keep_days = (dt.date.today() - cutoff).days
    monkeypatch.setenv("QM_DATA_DIR", str(cleaned))
    assert cleanup.cleanup_command(keep_days=keep_days, bronze=True, apply=True) == 0
    remaining = sorted((cleaned / "bronze" / "stocks_daily").iterdir())
    assert remaining[0].name == f"session_date={cutoff}"
    assert sorted((cleaned / "bronze" / "options_daily").iterdir())[0].name == f"session_date={cutoff}"

    # a split after the newest session: every earlier factor of that ticker moves, the removed ones too
    split_ticker = market.stock_day_aggs(new_day).column("ticker")[0].as_py()
    new_split = {
        "id": "new-split",
        "execution_date": new_day.isoformat(),
        "split_from": 1,
        "split_to": SPLIT_TO,
    }
    for lake in (kept, cleaned):
        write_rest_records(lake, "splits", [*market.splits(), {**new_split, "ticker": split_ticker}], 1)

    assert _refresh(kept, monkeypatch, new_day, market, split_ticker) == 0
    # dbt build, gold export and validate all pass on the cleaned lake
    assert _refresh(cleaned, monkeypatch, new_day, market, split_ticker) == 0

    expected, got = _features(kept), _features(cleaned)
    assert [r[:2] for r in got] == [r[:2] for r in expected]  # every (ticker, session), removed ones too
    assert np.allclose(
        np.array([r[2:] for r in got], dtype=float),
        np.array([r[2:] for r in expected], dtype=float),
        rtol=1e-9,
        equal_nan=True,
    )
    old = [r for r in got if r[0] == split_ticker and r[1] < cutoff]
    assert old and all(r[2] < 0.3 for r in old), "removed sessions must follow the new 1-for-4 split"
    for relation in ("fct_option_contracts_daily", "fct_options_underlying_daily"):
        assert _rows(cleaned, f"select count(*) from {relation}") == _rows(
            kept, f"select count(*) from {relation}"
        )

    gold_expected, gold_got = _gold(kept), _gold(cleaned)
    assert gold_got.keys() == gold_expected.keys()
    for name, values in gold_expected.items():
        if values.dtype.kind == "f":
            assert np.allclose(gold_got[name], values, rtol=1e-6, equal_nan=True), name
        else:
            assert (gold_got[name] == values).all(), name
    assert gold_got["calendar"][0] == sessions[0].isoformat()

    report = validate.validate(load_settings(), deep=True)
    assert not report.problems, report.problems


def test_cleanup_refuses_what_silver_or_gold_would_lose_and_full_refresh_is_refused(
    market: Market, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    sessions = market.sessions[:30]
    write_market_sessions(data, market, sessions[:20], minute_days=sessions[:2], options=False)
    monkeypatch.setenv("QM_DATA_DIR", str(data))
    keep_days = (dt.date.today() - sessions[10]).days
    # nothing built yet: the rows would exist nowhere
    assert cleanup.cleanup_command(keep_days=keep_days, bronze=True, apply=True) == 1
    assert len(list((data / "bronze" / "stocks_daily").iterdir())) == 20

    run_dbt(["build", "--select", "+qlib_export", "+fct_stock_minute_features_daily"], data, data / "dbt")
    assert layers.gold_calendar_dates(load_settings(), "1min") == sessions[:2]
    # minute sessions in the 1min Qlib provider would leave gold at the next build
    plan = cleanup.plan_cleanup(load_settings(), keep_days, bronze=True)
    blockers, _ = cleanup.history_dependents(load_settings(), plan)
    assert [(b.dataset, b.where, b.sessions) for b in blockers] == [
        ("stocks_minute", "gold calendars/1min.txt", sessions[:2])
    ]
    assert cleanup.cleanup_command(keep_days=keep_days, bronze=True, apply=True) == 1
    assert len(list((data / "bronze" / "stocks_minute").iterdir())) == 2
    # leaving minute bars out, daily sessions go: silver keeps them
    assert (
        cleanup.cleanup_command(keep_days=keep_days, bronze=True, apply=True, datasets=["stocks_daily"]) == 0
    )
    assert len(list((data / "bronze" / "stocks_daily").iterdir())) == 10

    for day in sessions[20:22]:
        write_flatfile_session(data, "stocks_daily", day, market.stock_day_aggs(day), 1)
    run_dbt(["build", "--select", "+qlib_export"], data, data / "dbt")
    assert _rows(data, "select count(distinct session_date) from fct_stock_features_daily") == [(22,)]

    with pytest.raises(
        AssertionError, match=r"int_stock_daily_bars holds 10 session\(s\).*allow_history_loss"
    ):
        run_dbt(["build", "--select", "+fct_stock_features_daily", "--full-refresh"], data, data / "dbt")
    assert _rows(data, "select count(distinct session_date) from fct_stock_features_daily") == [(22,)]
    run_dbt(
        [
            "build",
            "--select",
            "+fct_stock_features_daily",
            "--full-refresh",
            "--vars",
            "{allow_history_loss: true}",
        ],
        data,
        data / "dbt",
    )
    assert _rows(data, "select min(session_date) from fct_stock_features_daily") == [(sessions[10],)]
