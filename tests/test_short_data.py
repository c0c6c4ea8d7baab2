"""Short data reaches gold point in time, and a renamed ticker's history sits under its current name.

Short data reaches gold point in time: each session sees only what FINRA had published before its close.

Bronze is written from the sandbox market (stock bars, short interest, short volume), the real `dbt run`
builds `fct_short_data_daily` and the gold export, and the gold `.bin` files are compared with values
recomputed here from the REST records and the NYSE calendar: short interest settled on session i is
published on session i + 7 at 18:00 New York and used from session i + 8; a day's short volume is used
from the next session.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from dbt_fixtures import run_dbt, ticker_event_records, write_market_sessions, write_rest_records

from loaders import calendar as nyse
from loaders.gold.symbols import feature_dir_name, to_qlib_symbol
from loaders.sandbox.market import Market, MarketConfig

PUBLICATION_SESSIONS = 7


@pytest.fixture(scope="module")
def gold(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Market]:
    data = tmp_path_factory.mktemp("short")
    market = Market(
        MarketConfig(
            seed=5,
            start=dt.date(2025, 1, 2),
            end=dt.date(2025, 4, 30),
            tickers=8,
            option_underlyings=1,
            contracts_per_underlying=4,
            minute=False,
        )
    )
    write_market_sessions(data, market, market.sessions, options=False)
    write_rest_records(data, "short_interest", market.short_interest())
    write_rest_records(data, "short_volume", market.short_volume())
    write_rest_records(data, "ticker_events", ticker_event_records(market, ["NEWC"]))
    run_dbt(["run", "--select", "+qlib_export"], data, data / "work")
    return data / "gold" / "qlib", market


def _field(provider: Path, ticker: str, name: str) -> dict[str, float]:
    calendar = (provider / "calendars" / "day.txt").read_text().split()
    values = np.fromfile(
        provider / "features" / feature_dir_name(to_qlib_symbol(ticker)) / f"{name}.day.bin", "<f4"
    )
    start = int(values[0])
    return {day: float(v) for day, v in zip(calendar[start:], values[1:], strict=False) if not np.isnan(v)}


def test_short_interest_and_short_volume_are_exported_point_in_time(gold: tuple[Path, Market]) -> None:
    provider, market = gold
    sessions = nyse.sessions(market.sessions[0], market.sessions[-1])
    index = {d.isoformat(): i for i, d in enumerate(sessions)}
    checked_interest = checked_volume = 0
    tickers = sorted({r["ticker"] for r in market.short_interest()})[:4]
    for ticker in tickers:
        traded = {
            d.isoformat()
            for d in market.sessions
            if ticker in market.stock_day_aggs(d).column("ticker").to_pylist()
        }
        interest = sorted(
            (index[r["settlement_date"]] + PUBLICATION_SESSIONS + 1, r["short_interest"])
            for r in market.short_interest()
            if r["ticker"] == ticker
        )
        volume = sorted(
            (index[r["date"]] + 1, r["short_volume"] / r["total_volume"])
            for r in market.short_volume()
            if r["ticker"] == ticker
        )
        got_interest = _field(provider, ticker, "short_interest")
        got_ratio = _field(provider, ticker, "short_volume_ratio")
        for day in sorted(traded):
            i = index[day]
            known = [v for usable, v in interest if usable <= i]
            if known:
                assert got_interest[day] == np.float32(known[-1]), (ticker, day)
                checked_interest += 1
            else:
                assert day not in got_interest, (ticker, day, "short interest before it was published")
            ratios = [v for usable, v in volume if usable <= i]
            if ratios:
                assert got_ratio[day] == np.float32(ratios[-1]), (ticker, day)
                checked_volume += 1
            else:
                assert day not in got_ratio
    assert checked_interest > 50 and checked_volume > 200
    assert list((provider / "features").glob("*/days_to_cover.day.bin"))


def test_gold_holds_a_renamed_ticker_under_its_current_name_and_keeps_delisted_spans(
    gold: tuple[Path, Market],
) -> None:
    """LGCY became NEWC on 2025-03-14: gold has one NEWC instrument from LGCY's first session, the old
    name resolves through ticker_history.txt, and GONE (delisted) keeps its real span."""
    provider, market = gold
    spans = {
        line.split("\t")[0]: tuple(line.split("\t")[1:])
        for line in (provider / "instruments" / "all.txt").read_text().splitlines()
    }
    assert "LGCY" not in spans
    assert spans["NEWC"] == ("2025-01-02", market.sessions[-1].isoformat())
    gone = [d for d in market.sessions if "GONE" in market.stock_day_aggs(d).column("ticker").to_pylist()]
    assert spans["GONE"] == (gone[0].isoformat(), gone[-1].isoformat())
    assert (provider / "ticker_history.txt").read_text() == "LGCY\tNEWC\t2025-01-02\t2025-03-14\n"
    # the series is continuous: a close on every session across the change
    close = _field(provider, "NEWC", "close")
    around = [d.isoformat() for d in market.sessions if dt.date(2025, 3, 10) <= d <= dt.date(2025, 3, 18)]
    assert all(day in close for day in around)
