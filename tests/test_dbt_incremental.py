"""An incremental dbt build over later sessions equals a full refresh bit for bit, and so do two full builds.

Phase 1 builds silver over the first sessions. Phase 2 then changes bronze the ways production does:
new sessions, minute bars arriving late for an old session, a re-loaded session with a corrected close
and a vanished row, a split and a dividend that arrive after the sessions they adjust, a ticker change
learnt after both names traded (LGCY's old bars move to NEWC), and the option contracts reference loaded
for the first time. The incremental run must then match a `--full-refresh` build of the same bronze
into another DuckDB file, every column but the build bookkeeping (`built_at`, `rewritten_from_date`).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dbt_fixtures import (
    SILVER_SELECTION,
    contract_references,
    run_dbt,
    ticker_event_records,
    write_flatfile_session,
    write_market_sessions,
    write_rest_records,
)

from loaders.sandbox.market import Market, MarketConfig

NEW_SESSIONS = 12

# every table the silver build materialises, with its grain
COMPARED = {
    "main_intermediate.int_trading_sessions": "session_date",
    "main_intermediate.int_stock_minute_bars_aggregated_daily": "ticker, session_date",
    "main_intermediate.int_stock_daily_bars": "listed_ticker, session_date",
    "main_intermediate.int_stock_adjustment_factors": "ticker, applies_until_date",
    "main_intermediate.int_stock_daily_adjusted": "ticker, session_date",
    "main_intermediate.int_ticker_history": "security_id, valid_from_date",
    "main_intermediate.int_option_contracts": "contract_ticker",
    "main.fct_stock_features_daily": "ticker, session_date",
    "main.fct_stock_minute_features_daily": "ticker, session_date",
    "main.fct_option_contracts_daily": "contract_ticker, session_date",
    "main.fct_options_underlying_daily": "underlying_ticker, session_date",
}


# when and from which session a build wrote a row: differs between builds by design
BOOKKEEPING = ("built_at", "rewritten_from_date")


def _rows(data_dir: Path, relation: str, order_by: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    with duckdb.connect(str(data_dir / "quantmini.duckdb"), read_only=True) as con:
        names = [d[0] for d in con.execute(f"select * from {relation} limit 0").description]
        kept = ", ".join(f'"{name}"' for name in names if name not in BOOKKEEPING)
        cursor = con.execute(f"select {kept} from {relation} order by {order_by}")
        return [d[0] for d in cursor.description], cursor.fetchall()


def _same(a: Any, b: Any) -> bool:
    """Bit-identical: no tolerance (silver sums in a fixed order or in exact types)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a.hex() == b.hex()
    return a == b


def _assert_identical(left: Path, right: Path, what: str) -> None:
    for relation, order_by in COMPARED.items():
        names, got = _rows(left, relation, order_by)
        right_names, want = _rows(right, relation, order_by)
        assert names == right_names, f"{relation}: columns differ"
        assert len(got) == len(want), f"{relation}: {len(got)} rows vs {len(want)} ({what})"
        for row_got, row_want in zip(got, want, strict=True):
            for name, a, b in zip(names, row_got, row_want, strict=True):
                assert _same(a, b), f"{relation} {row_want[:2]} {name}: {a!r} != {b!r} ({what})"


def _corrected_session(market: Market, day: dt.date, dropped: str, corrected: str) -> pa.Table:
    """A re-published day file: one ticker's row gone, another's close moved inside its range."""
    table = market.stock_day_aggs(day)
    table = table.filter(pc.not_equal(table.column("ticker"), dropped))
    is_corrected = pc.equal(table.column("ticker"), corrected)
    midpoint = pc.divide(pc.add(table.column("high"), table.column("low")), 2.0)
    close = pc.if_else(is_corrected, midpoint, table.column("close"))
    return table.set_column(table.column_names.index("close"), "close", close)


@pytest.mark.slow
def test_incremental_build_equals_full_refresh(tmp_path: Path) -> None:
    market = Market(
        MarketConfig(
            seed=5,
            # longer than the features' lookback plus its calendar slack, so incremental runs read a
            # ticker's recent sessions only (and all of them for a ticker that missed many)
            start=dt.date(2023, 4, 3),
            end=dt.date(2025, 3, 31),
            tickers=10,
            option_underlyings=2,
            contracts_per_underlying=6,
        )
    )
    sessions = market.sessions
    first, later = sessions[:-NEW_SESSIONS], sessions[-NEW_SESSIONS:]
    cutoff = first[-1].isoformat()
    incremental_dir, full_dir = tmp_path / "incremental", tmp_path / "full"
    incremental_dir.mkdir()
    full_dir.mkdir()

    # phase 1: sessions up to the cutoff, corporate actions known by then minus one late dividend
    dividends = market.dividends()
    early_dividends = [d for d in dividends if d["ex_dividend_date"] <= cutoff]
    late_dividend = early_dividends[len(early_dividends) // 2]
    write_market_sessions(incremental_dir, market, first, minute_days=first[-4:])
    write_rest_records(
        incremental_dir, "splits", [s for s in market.splits() if s["execution_date"] <= cutoff]
    )
    write_rest_records(incremental_dir, "dividends", [d for d in early_dividends if d is not late_dividend])
    run_dbt(["run", *SILVER_SELECTION], incremental_dir, tmp_path / "dbt-incremental")
    # as a lake built before the mart had `built_at`: the next incremental run adds the column
    with duckdb.connect(str(incremental_dir / "quantmini.duckdb")) as con:
        con.execute("alter table main.fct_stock_features_daily drop column built_at")

    # phase 2: new sessions and everything that changes history
    write_market_sessions(incremental_dir, market, later, minute_days=later[-4:])
    write_flatfile_session(incremental_dir, "stocks_minute", first[-20], market.stock_minute_aggs(first[-20]))
    daily = market.stock_day_aggs(first[-30]).column("ticker").to_pylist()
    write_flatfile_session(
        incremental_dir,
        "stocks_daily",
        first[-30],
        _corrected_session(market, first[-30], dropped=daily[-1], corrected=daily[0]),
        generation=1,
    )
    late_split = {
        "id": "late-split",
        "execution_date": later[-5].isoformat(),
        "split_from": 1,
        "split_to": 2,
        "ticker": daily[1],
    }
    write_rest_records(incremental_dir, "splits", [*market.splits(), late_split], generation=1)
    write_rest_records(incremental_dir, "dividends", dividends, generation=1)
    write_rest_records(
        incremental_dir, "options_contracts", contract_references(market, sessions), generation=1
    )
    # the ticker change LGCY -> NEWC is learnt only now, long after both names traded
    current = market.stock_day_aggs(sessions[-1]).column("ticker").to_pylist()
    write_rest_records(incremental_dir, "ticker_events", ticker_event_records(market, sorted(current)))
    _, before_rename = _rows(
        incremental_dir, "(select session_date from main.fct_stock_features_daily where ticker = 'LGCY')", "1"
    )
    assert before_rename, "LGCY traded under its own name in phase 1"
    run_dbt(["run", *SILVER_SELECTION], incremental_dir, tmp_path / "dbt-incremental")

    ran = tmp_path / "dbt-incremental" / "target" / "run" / "quantmini" / "models" / "marts"
    assert "delete from" in (ran / "fct_stock_features_daily.sql").read_text().lower(), (
        "second run was not incremental"
    )

    # the same bronze, built from scratch into another database
    (full_dir / "bronze").symlink_to(incremental_dir / "bronze", target_is_directory=True)
    run_dbt(["run", "--full-refresh", *SILVER_SELECTION], full_dir, tmp_path / "dbt-full")

    _assert_identical(incremental_dir, full_dir, "incremental vs full refresh")
    # and a second full build of the same bronze gives the same bits again
    again_dir = tmp_path / "again"
    again_dir.mkdir()
    (again_dir / "bronze").symlink_to(incremental_dir / "bronze", target_is_directory=True)
    run_dbt(["run", "--full-refresh", *SILVER_SELECTION], again_dir, tmp_path / "dbt-again")
    _assert_identical(again_dir, full_dir, "two full builds")

    # the changes did reach the marts
    _, factors = _rows(
        incremental_dir,
        f"(select adj_factor from main.fct_stock_features_daily where ticker = '{daily[1]}')",
        "adj_factor",
    )
    assert factors[0][0] <= 0.5, "the late split rescaled the ticker's whole history"
    _, vanished = _rows(
        incremental_dir,
        f"main.fct_stock_features_daily where ticker = '{daily[-1]}' and session_date = date '{first[-30]}'",
        "session_date",
    )
    assert vanished == [], "a row gone from a re-loaded session is gone from the mart"
    _, late_minutes = _rows(
        incremental_dir,
        f"main.fct_stock_features_daily where session_date = date '{first[-20]}' and vwap_source = 'minute_bars'",
        "ticker",
    )
    assert late_minutes, "minute bars loaded late for an old session feed its VWAP"
    _, lgcy = _rows(
        incremental_dir, "(select * from main.fct_stock_features_daily where ticker = 'LGCY')", "1"
    )
    assert lgcy == [], "LGCY's bars moved to its current ticker"
    _, newc = _rows(
        incremental_dir,
        f"(select session_date from main.fct_stock_features_daily where ticker = 'NEWC' "
        f"and session_date <= date '{before_rename[-1][0]}')",
        "1",
    )
    assert len(newc) == len(before_rename), "NEWC's history starts with LGCY's bars"

    # built_at: the run's time on every row it wrote (all new sessions among them), phase 1's on the
    # rows it left alone; the mart lost its column before phase 2 (an older lake), so that run rewrote it
    # whole; a full refresh stamps every row once
    with duckdb.connect(str(incremental_dir / "quantmini.duckdb"), read_only=True) as con:
        stamps = con.execute(
            "select count(distinct built_at), count(*) - count(built_at), "
            "count(*) filter (where built_at < (select max(built_at) from main_intermediate.int_stock_daily_adjusted)), "
            "count(*) filter (where built_at < (select max(built_at) from main_intermediate.int_stock_daily_adjusted) "
            f"and session_date > date '{cutoff}') from main_intermediate.int_stock_daily_adjusted"
        ).fetchone()
        assert stamps[0] == 2 and stamps[1] == 0 and stamps[2] > 0 and stamps[3] == 0, stamps
        assert con.execute(
            "select count(distinct built_at), count(*) - count(built_at) from main.fct_stock_features_daily"
        ).fetchone() == (1, 0)
    with duckdb.connect(str(full_dir / "quantmini.duckdb"), read_only=True) as con:
        assert con.execute(
            "select count(distinct built_at), count(*) - count(built_at) from main.fct_stock_features_daily"
        ).fetchone() == (1, 0)
