"""Qlib's own backtest runs on gold built from the demo market, and trades at the flat files' prices.

Bronze is written from the demo's sandbox market (its last half year of sessions, minute bars for the last
15, splits and dividends), the real `dbt run` builds silver and the gold export, then
`python -m loaders.gold.backtest` runs a TopkDropout backtest in its own process (Qlib's state is
per-process). Every trade's price divided by its session's `$factor` must be the raw price recomputed
here from the flat-file tables: the day bar's close, or for `vwap` the VWAP of the session's minute bars
where gold says `$vwap_minute` = 1 and (high + low + close) / 3 of the day bar where it says 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from dbt_fixtures import REPO_ROOT, run_dbt, write_market_sessions, write_rest_records

from loaders import demo
from loaders.sandbox.market import Market, MarketConfig

pytestmark = [pytest.mark.qlib, pytest.mark.xdist_group("backtest")]

DAILY_SESSIONS = 130
MINUTE_SESSIONS = 15


@pytest.fixture(scope="module")
def gold(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Market]:
    data = tmp_path_factory.mktemp("backtest")
    market = Market(
        MarketConfig(seed=42, start=demo.DEMO_START, end=demo.DEMO_END, tickers=demo.DEMO_TICKERS)
    )
    days = market.sessions[-DAILY_SESSIONS:]
    write_market_sessions(data, market, days, minute_days=days[-MINUTE_SESSIONS:], options=False)
    write_rest_records(data, "splits", market.splits())
    write_rest_records(data, "dividends", market.dividends())
    run_dbt(["run", "--select", "+qlib_export"], data, data / "work")
    return data / "gold" / "qlib", market


def _backtest(provider: Path, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "loaders.gold.backtest", str(provider), "--json", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _raw_prices(market: Market, days: list) -> pd.DataFrame:
    """Close, (h+l+c)/3 and minute VWAP per ticker and session, straight from the flat-file tables."""
    daily = []
    for day in days:
        bars = market.stock_day_aggs(day).to_pandas()
        bars["datetime"] = day.isoformat()
        daily.append(bars)
    frame = pd.concat(daily)
    frame["typical"] = (frame["high"] + frame["low"] + frame["close"]) / 3
    minutes = []
    for day in days[-MINUTE_SESSIONS:]:
        bars = market.stock_minute_aggs(day).to_pandas()
        bars["datetime"] = day.isoformat()
        minutes.append(bars)
    minute = pd.concat(minutes)
    minute["pv"] = (minute["high"] + minute["low"] + minute["close"]) / 3 * minute["volume"]
    sums = minute.groupby(["ticker", "datetime"])[["pv", "volume"]].sum()
    vwap = (sums["pv"] / sums["volume"]).rename("minute_vwap")
    return frame.set_index(["ticker", "datetime"]).join(vwap)


def _checked(result: dict, raw: pd.DataFrame, column_for) -> int:
    from loaders.gold.symbols import from_qlib_symbol

    assert result["trades"], "the backtest should trade"
    for trade in result["trades"]:
        bar = raw.loc[(from_qlib_symbol(trade["instrument"]), trade["datetime"])]
        expected = bar[column_for(trade)]
        # gold stores float32: price and factor each carry a relative rounding of at most 2**-24
        assert trade["trade_price"] / trade["factor"] == pytest.approx(expected, rel=2e-7), trade
    return len(result["trades"])


@pytest.mark.slow
def test_topk_dropout_trades_at_the_raw_close_and_vwap(gold: tuple[Path, Market]) -> None:
    provider, market = gold
    raw = _raw_prices(market, market.sessions[-DAILY_SESSIONS:])

    close = _backtest(provider, "--deal-price", "close")
    assert _checked(close, raw, lambda _: "close") > 50
    assert any(t["factor"] != 1.0 for t in close["trades"]), "some trades should be on adjusted history"

    vwap = _backtest(provider, "--deal-price", "vwap")
    minute = [t for t in vwap["trades"] if t["vwap_minute"] == 1.0]
    assert minute and len(minute) < len(vwap["trades"]), "trades on both kinds of $vwap sessions"
    _checked(vwap, raw, lambda t: "minute_vwap" if t["vwap_minute"] == 1.0 else "typical")


@pytest.mark.slow
def test_minute_vwap_only_trades_only_on_minute_vwap_sessions(gold: tuple[Path, Market]) -> None:
    provider, market = gold
    minute_days = {d.isoformat() for d in market.sessions[-MINUTE_SESSIONS:]}
    result = _backtest(provider, "--deal-price", "vwap", "--minute-vwap-only")
    assert result["trades"]
    assert {t["datetime"] for t in result["trades"]} <= minute_days
    assert all(t["vwap_minute"] == 1.0 for t in result["trades"])


def test_gold_vwap_minute_says_where_each_vwap_came_from(gold: tuple[Path, Market]) -> None:
    import numpy as np

    from loaders.gold.symbols import feature_dir_name, to_qlib_symbol

    provider, market = gold
    calendar = (provider / "calendars" / "day.txt").read_text().split()
    minute_days = {d.isoformat() for d in market.sessions[-MINUTE_SESSIONS:]}
    checked = 0
    for ticker in sorted(set(market.stock_day_aggs(market.sessions[-1]).column("ticker").to_pylist()))[:10]:
        folder = provider / "features" / feature_dir_name(to_qlib_symbol(ticker))
        values = np.fromfile(folder / "vwap_minute.day.bin", dtype="<f4")
        start = int(values[0])
        for day, value in zip(calendar[start:], values[1:], strict=True):
            if not np.isnan(value):
                assert value == (1.0 if day in minute_days else 0.0), (ticker, day, value)
                checked += 1
    assert checked > 10 * MINUTE_SESSIONS
