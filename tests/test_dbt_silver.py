"""Silver (dbt) on bronze written from the sandbox market: adjustment, features, minute and option marts.

One `dbt build` (models, data tests and unit tests) runs per module over a small market; the tests then
recompute the features independently with pandas from the bronze rows and compare.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dbt_fixtures import (
    SILVER_SELECTION,
    contract_references,
    run_dbt,
    ticker_event_records,
    write_market_sessions,
    write_rest_records,
)

from loaders.calendar import session_bounds
from loaders.sandbox.market import Market, MarketConfig

MINUTE_SESSIONS = 6
HALF_DAY = dt.date(2024, 11, 29)  # the day after Thanksgiving: NYSE closes at 13:00

# one worker builds the module's silver once and runs every test against it
pytestmark = pytest.mark.xdist_group("dbt_silver")


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(
        MarketConfig(
            seed=11,
            start=dt.date(2024, 1, 2),
            end=dt.date(2025, 3, 31),
            tickers=14,
            option_underlyings=2,
            contracts_per_underlying=6,
        )
    )


@pytest.fixture(scope="module")
def silver(market: Market, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with bronze for every session (minute bars for the last few) and a built silver."""
    data_dir = tmp_path_factory.mktemp("silver")
    minute_days = [HALF_DAY, *market.sessions[-MINUTE_SESSIONS:]]
    write_market_sessions(data_dir, market, market.sessions, minute_days=minute_days)
    write_rest_records(data_dir, "splits", market.splits())
    write_rest_records(data_dir, "dividends", market.dividends())
    write_rest_records(data_dir, "options_contracts", contract_references(market, market.sessions))
    write_rest_records(data_dir, "ticker_events", ticker_event_records(market, ["NEWC"]))
    run_dbt(["build", *SILVER_SELECTION], data_dir, data_dir / "dbt")
    return data_dir


def frame(data_dir: Path, sql: str) -> pd.DataFrame:
    with duckdb.connect(str(data_dir / "quantmini.duckdb"), read_only=True) as con:
        con.execute("set search_path = 'main,main_intermediate,main_staging'")
        return con.execute(sql).df()


def features(data_dir: Path) -> pd.DataFrame:
    return frame(data_dir, "select * from fct_stock_features_daily order by ticker, session_date")


def test_dbt_build_works_before_any_bronze_exists(tmp_path: Path) -> None:
    run_dbt(["build", *SILVER_SELECTION], tmp_path, tmp_path / "dbt")
    counts = frame(
        tmp_path,
        "select (select count(*) from fct_stock_features_daily) + (select count(*) from fct_option_contracts_daily)"
        " + (select count(*) from fct_stock_minute_features_daily) as n_rows",
    )
    assert counts.iloc[0, 0] == 0


def test_split_does_not_show_as_a_return(silver: Path, market: Market) -> None:
    data = features(silver)
    splits = market.splits()
    assert {s["ticker"] for s in splits} >= {"XYZ", "GONE"}
    for split in splits:
        rows = data[data["ticker"] == split["ticker"]].reset_index(drop=True)
        at = rows.index[rows["session_date"] == pd.Timestamp(split["execution_date"])]
        if len(at) == 0:  # executed after the ticker's last session in range
            continue
        i = int(at[0])
        raw_move = rows.loc[i, "close"] / rows.loc[i - 1, "close"] - 1
        # the raw series jumps by about the ratio; the adjusted return loses that jump
        assert abs(rows.loc[i, "return_1d"]) < abs(raw_move) / 2, (
            f"{split['ticker']} split shows in return_1d"
        )
        if split["ticker"] == "XYZ":  # 3-for-2: raw -33 %, an ordinary day adjusted
            assert raw_move < -0.25
            assert abs(rows.loc[i, "return_1d"]) < 0.15
        # prices before the split are scaled by split_from / split_to (times dividend factors)
        before, after = rows.loc[i - 1, "adj_factor"], rows.loc[i, "adj_factor"]
        assert before / after == pytest.approx(split["split_from"] / split["split_to"], rel=0.05)


def test_factor_is_one_on_each_tickers_latest_session(silver: Path) -> None:
    data = features(silver)
    last = data.groupby("ticker").tail(1)
    assert (last["adj_factor"] == 1.0).all()
    assert np.allclose(data["adj_close"], data["close"] * data["adj_factor"], rtol=0, atol=0)
    assert np.allclose(data["adj_volume"], data["volume"] / data["adj_factor"], rtol=0, atol=0)


def test_dividend_ex_date_return_is_crsp_total_return(silver: Path, market: Market) -> None:
    data = features(silver).set_index(["ticker", "session_date"])
    split_days = {(s["ticker"], s["execution_date"]) for s in market.splits()}
    checked = 0
    for dividend in market.dividends():
        key = (dividend["ticker"], pd.Timestamp(dividend["ex_dividend_date"]))
        if key not in data.index or (dividend["ticker"], dividend["ex_dividend_date"]) in split_days:
            continue
        row = data.loc[key]
        previous = data.loc[(dividend["ticker"], row["previous_session_date"])]
        expected = row["close"] / (previous["close"] - dividend["cash_amount"]) - 1
        assert row["return_1d"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
        checked += 1
    assert checked > 5


def _recompute(group: pd.DataFrame) -> pd.DataFrame:
    """The documented formulas in pandas, over the ticker's own rows."""
    close, high, low = group["adj_close"], group["adj_high"], group["adj_low"]
    prev = close.shift(1)
    log_ret = np.log(close / prev)
    tr = (
        pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1)
        .max(axis=1)
        .where(prev.notna())
    )
    gain = (close - prev).clip(lower=0).where(prev.notna())
    loss = (prev - close).clip(lower=0).where(prev.notna())
    mean_gain = gain.rolling(14, min_periods=14).mean()
    mean_loss = loss.rolling(14, min_periods=14).mean()
    out = pd.DataFrame(index=group.index)
    for n in (1, 5, 20, 60):
        out[f"return_{n}d"] = close / close.shift(n) - 1
        out[f"log_return_{n}d"] = np.log(close / close.shift(n))
    out["realized_volatility_20d"] = log_ret.rolling(20, min_periods=20).std(ddof=1)
    out["realized_volatility_60d"] = log_ret.rolling(60, min_periods=60).std(ddof=1)
    out["relative_volume_20d"] = (
        group["adj_volume"] / group["adj_volume"].shift(1).rolling(20, min_periods=20).mean()
    )
    out["atr_14"] = tr.rolling(14, min_periods=14).mean()
    out["rsi_14"] = np.where(mean_gain + mean_loss == 0, 50.0, 100.0 * (mean_gain / (mean_gain + mean_loss)))
    out.loc[mean_gain.isna(), "rsi_14"] = np.nan
    out["gap"] = group["adj_open"] / prev - 1
    out["distance_to_52_week_high"] = close / high.rolling(252, min_periods=252).max() - 1
    out["distance_to_52_week_low"] = close / low.rolling(252, min_periods=252).min() - 1
    return out


def test_features_match_an_independent_recomputation(silver: Path) -> None:
    data = features(silver)
    expected = data.groupby("ticker", group_keys=False)[data.columns.tolist()].apply(_recompute)
    for column in expected.columns:
        got, want = data[column].astype(float), expected[column].astype(float)
        assert (got.isna() == want.isna()).all(), f"{column}: NULLs differ"
        np.testing.assert_allclose(
            got[got.notna()], want[want.notna()], rtol=1e-9, atol=1e-12, err_msg=column
        )
    # full windows: a ticker with at least 253 sessions has its 52-week features from its 252nd session on
    full = data.groupby("ticker").filter(lambda g: len(g) >= 253)
    assert full["distance_to_52_week_high"].notna().sum() > 0
    assert (full["distance_to_52_week_high"] <= 0).all() or full["distance_to_52_week_high"].isna().any()


def test_halted_session_has_no_row_and_returns_span_the_gap(silver: Path, market: Market) -> None:
    data = features(silver).set_index(["ticker", "session_date"])
    halts = [(t, d) for t, d in market.halts() if d not in (market.sessions[0], market.sessions[-1])]
    assert halts, "the sandbox halts CON for a day"
    for ticker, day in halts:
        assert (ticker, pd.Timestamp(day)) not in data.index
        following = data.loc[ticker]
        after = following[following.index > pd.Timestamp(day)].head(1)
        if after.empty:
            continue
        before = following[following.index < pd.Timestamp(day)].tail(1)
        assert after["previous_session_date"].iloc[0] == before.index[0]
        assert after["return_1d"].iloc[0] == pytest.approx(
            after["adj_close"].iloc[0] / before["adj_close"].iloc[0] - 1, rel=1e-12
        )


def test_vwap_and_minute_features_come_from_minute_bars(silver: Path, market: Market) -> None:
    data = features(silver)
    minute_days = {pd.Timestamp(d) for d in [HALF_DAY, *market.sessions[-MINUTE_SESSIONS:]]}
    on_minute_days = data["session_date"].isin(minute_days)
    assert (data.loc[on_minute_days, "vwap_source"] == "minute_bars").all()
    assert (data.loc[~on_minute_days, "vwap_source"] == "daily_typical_price").all()
    typical = (data["high"] + data["low"] + data["close"]) / 3
    assert np.allclose(data.loc[~on_minute_days, "vwap"], typical[~on_minute_days], rtol=0, atol=1e-12)

    minute_features = frame(silver, "select * from fct_stock_minute_features_daily").set_index(
        ["ticker", "session_date"]
    )
    day = market.sessions[-1]
    bars = market.stock_minute_aggs(day).to_pandas()
    bars["start"] = pd.to_datetime(bars["window_start"], utc=True)
    opens_at, closes_at = (pd.Timestamp(t) for t in session_bounds(day))
    for ticker, group in bars.groupby("ticker"):
        group = group.sort_values("start")
        row = minute_features.loc[(ticker, pd.Timestamp(day))]
        typical_m = (group["high"] + group["low"] + group["close"]) / 3
        assert row["minute_vwap"] == pytest.approx(
            (typical_m * group["volume"]).sum() / group["volume"].sum(), rel=1e-12
        )
        regular = group[(group["start"] >= opens_at) & (group["start"] < closes_at)]
        assert row["active_minutes"] == int((regular["volume"] > 0).sum())
        first = regular[regular["start"] < opens_at + pd.Timedelta(minutes=30)]
        assert row["first_30_minutes_return"] == pytest.approx(
            first["close"].iloc[-1] / first["open"].iloc[0] - 1, rel=1e-12
        )
        before_last_30 = regular[regular["start"] < closes_at - pd.Timedelta(minutes=30)]
        assert row["last_30_minutes_return"] == pytest.approx(
            regular["close"].iloc[-1] / before_last_30["close"].iloc[-1] - 1, rel=1e-12
        )
        log_returns = np.log(regular["close"] / regular["close"].shift(1)).dropna()
        assert row["intraday_realized_volatility"] == pytest.approx(
            math.sqrt((log_returns**2).sum()), rel=1e-9
        )
        daily_row = data[(data["ticker"] == ticker) & (data["session_date"] == pd.Timestamp(day))]
        assert daily_row["vwap"].iloc[0] == row["minute_vwap"]

    # a half day has 210 regular minutes (13:00 close from the exchange calendar, not 16:00)
    half_day = frame(
        silver,
        f"select max(active_minutes) as most, min(last_30_minutes_return) is not null as has_last_30"
        f" from fct_stock_minute_features_daily where session_date = date '{HALF_DAY.isoformat()}'",
    )
    assert half_day["most"].iloc[0] == 210
    assert bool(half_day["has_last_30"].iloc[0])


def test_option_contracts_parse_and_aggregate_per_underlying(silver: Path, market: Market) -> None:
    contracts = frame(silver, "select * from int_option_contracts")
    assert contracts["has_valid_occ_symbol"].all()
    roots = dict(zip(contracts["occ_root"], contracts["underlying_ticker"], strict=False))
    referenced = contracts[contracts["has_reference"]]
    assert set(referenced["underlying_source"]) == {"contract_reference"}
    assert roots.get("BRKB") == "BRK.B", "root BRKB maps to BRK.B through the contracts reference"
    reference = {r["ticker"]: r for r in contract_references(market, market.sessions)}
    for row in referenced.itertuples():
        ref = reference[row.contract_ticker]
        assert row.underlying_ticker == ref["underlying_ticker"]
        assert row.expiration_date.date().isoformat() == ref["expiration_date"]
        assert row.contract_type == ref["contract_type"]
        assert row.strike_price == pytest.approx(ref["strike_price"])

    day = market.sessions[-1]
    option_bars = (
        market.option_day_aggs(day)
        .to_pandas()
        .merge(
            contracts[["contract_ticker", "underlying_ticker", "contract_type"]],
            left_on="ticker",
            right_on="contract_ticker",
        )
    )
    per_underlying = frame(
        silver, f"select * from fct_options_underlying_daily where session_date = date '{day.isoformat()}'"
    ).set_index("underlying_ticker")
    for underlying, group in option_bars.groupby("underlying_ticker"):
        calls = group.loc[group["contract_type"] == "call", "volume"].sum()
        puts = group.loc[group["contract_type"] == "put", "volume"].sum()
        row = per_underlying.loc[underlying]
        assert (row["call_volume"], row["put_volume"]) == (calls, puts)
        assert row["put_call_ratio"] == pytest.approx(puts / calls)
        assert row["contracts_traded"] == int((group["volume"] > 0).sum())

    daily = frame(silver, "select * from fct_option_contracts_daily")
    assert (daily["days_to_expiry"] >= 0).all()
    priced = daily.dropna(subset=["underlying_close"])
    assert len(priced) > 0.9 * len(daily)
    # moneyness and in-the-money on the deliverable: shares per contract / 100 x the underlying's close
    shares = priced["contract_ticker"].map({t: r["shares_per_contract"] for t, r in reference.items()})
    assert shares.notna().all(), "every traded contract has a reference row"
    deliverable = shares / 100 * priced["underlying_close"]
    assert np.allclose(priced["moneyness"], deliverable / priced["strike_price"], rtol=1e-12)
    calls = priced["contract_type"] == "call"
    itm = np.where(calls, deliverable > priced["strike_price"], deliverable < priced["strike_price"])
    assert (priced["is_in_the_money"].to_numpy() == itm).all()
    adjusted = priced[priced["contract_ticker"].str.startswith("O:XYZ1")]
    assert len(adjusted) and (adjusted["shares_per_contract"] == 150).all()
    assert (adjusted["underlying_ticker"] == "XYZ").all(), "XYZ1 delivers XYZ shares"
    naive = np.where(
        adjusted["contract_type"] == "call",
        adjusted["underlying_close"] > adjusted["strike_price"],
        adjusted["underlying_close"] < adjusted["strike_price"],
    )
    assert (adjusted["is_in_the_money"].to_numpy() != naive).any(), "the deliverable changes the answer"
    # an in-the-money XYZ1 contract trades at about its deliverable-based intrinsic value or above
    in_the_money = adjusted[adjusted["intrinsic_value"] > 0]
    assert len(in_the_money) and (in_the_money["close"] >= 0.95 * in_the_money["intrinsic_value"]).all()


def test_a_renamed_ticker_keeps_one_continuous_history(silver: Path, market: Market) -> None:
    """LGCY became NEWC on 2024-09-30: NEWC's features run across the change, LGCY is gone from the
    marts, and its old bars are NEWC's history (listed_ticker says what they traded as)."""
    renamed = dt.date(2024, 9, 30)
    data = frame(silver, "select * from fct_stock_features_daily where ticker in ('LGCY', 'NEWC')")
    assert set(data["ticker"]) == {"NEWC"}
    first_lgcy = min(
        d for d in market.sessions if "LGCY" in market.stock_day_aggs(d).column("ticker").to_pylist()
    )
    assert data["session_date"].min().date() == first_lgcy
    after = data[data["session_date"].dt.date == renamed].iloc[0]
    before_close = (
        market.stock_day_aggs(after["previous_session_date"].date()).to_pandas().set_index("ticker")
    )
    assert after["previous_session_date"].date() < renamed
    assert after["return_1d"] == pytest.approx(
        after["close"] / before_close.loc["LGCY", "close"] - 1, rel=1e-9
    ), "the first NEWC session's return is measured against LGCY's last close"
    assert data["realized_volatility_60d"].notna().sum() > 100
    listed = frame(
        silver,
        "select listed_ticker, min(session_date) as first, max(session_date) as last from int_stock_daily_adjusted where ticker = 'NEWC' group by 1",
    )
    spans = {r.listed_ticker: (r.first.date(), r.last.date()) for r in listed.itertuples()}
    assert spans["LGCY"][1] < renamed <= spans["NEWC"][0]
