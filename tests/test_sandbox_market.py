"""The synthetic market is deterministic, follows the NYSE calendar and keeps Polygon's invariants."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import re
import threading
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from reference_files import FLATFILE_SAMPLES

from loaders import calendar
from loaders.sandbox import flatfiles
from loaders.sandbox.market import Market, MarketConfig

OCC = re.compile(r"^O:(?P<root>[A-Z0-9]{1,6})(?P<date>\d{6})(?P<cp>[CP])(?P<strike>\d{8})$")
THANKSGIVING, BLACK_FRIDAY, XMAS_EVE = dt.date(2025, 11, 27), dt.date(2025, 11, 28), dt.date(2025, 12, 24)


@pytest.fixture(scope="module")
def market(sandbox_config: MarketConfig) -> Market:
    """A private market (its clock is not shared with the running sandbox)."""
    return Market(sandbox_config)


def _ny(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=calendar.NEW_YORK)


def _check_minutes_add_up(day_table: pa.Table, minute_table: pa.Table) -> None:
    day = day_table.to_pandas().set_index("ticker")
    minutes = minute_table.to_pandas()
    assert minutes.groupby("ticker")["window_start"].apply(lambda s: s.is_monotonic_increasing).all()
    agg = minutes.groupby("ticker").agg(
        volume=("volume", "sum"),
        transactions=("transactions", "sum"),
        high=("high", "max"),
        low=("low", "min"),
        open=("open", "first"),
        close=("close", "last"),
    )
    assert sorted(agg.index) == sorted(day.index), "every traded ticker has minute bars and vice versa"
    agg = agg.loc[day.index]
    for column in ("volume", "transactions", "high", "low", "open", "close"):
        mismatch = agg[column] != day[column]
        assert not mismatch.any(), f"{column} differs for {list(day.index[mismatch.to_numpy()])[:5]}"
    assert (minutes["high"] >= minutes[["open", "close"]].max(axis=1)).all()
    assert (minutes["low"] <= minutes[["open", "close"]].min(axis=1)).all()
    assert (minutes["volume"] >= 1).all() and (minutes["transactions"] >= 1).all()


# --- determinism ----------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files_and_records(sandbox_config: MarketConfig) -> None:
    a, b = Market(sandbox_config), Market(sandbox_config)
    day = a.sessions[40]
    for dataset in flatfiles.PREFIXES:
        assert flatfiles.render_file(a, dataset, day) == flatfiles.render_file(b, dataset, day), dataset
    for method in (
        "tickers",
        "splits",
        "dividends",
        "news",
        "financials",
        "short_interest",
        "options_contracts",
    ):
        assert getattr(a, method)() == getattr(b, method)(), method
    other = Market(dataclasses.replace(sandbox_config, seed=sandbox_config.seed + 1))
    assert flatfiles.render_file(other, "stocks_daily", day) != flatfiles.render_file(a, "stocks_daily", day)


def test_one_day_needs_no_other_days_intraday_data(sandbox_config: MarketConfig) -> None:
    """Per-day data is seeded by (seed, dataset, day): asking for days in another order changes nothing."""
    a, b = Market(sandbox_config), Market(sandbox_config)
    first, later = a.sessions[5], a.sessions[50]
    a.stock_minute_aggs(first)
    assert a.stock_minute_aggs(later).equals(b.stock_minute_aggs(later))
    assert a.option_minute_aggs(later).equals(b.option_minute_aggs(later))


def test_concurrent_reads_compute_a_day_once_and_agree(sandbox_config: MarketConfig) -> None:
    market = Market(sandbox_config)
    day = market.sessions[30]
    results: list[pa.Table] = []
    threads = [
        threading.Thread(target=lambda: results.append(market.stock_minute_aggs(day))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(r is results[0] for r in results)


# --- calendar -------------------------------------------------------------------------------------------


def test_sessions_skip_weekends_and_holidays(market: Market) -> None:
    assert all(d.weekday() < 5 for d in market.sessions)
    assert THANKSGIVING not in market.sessions and dt.date(2025, 12, 25) not in market.sessions
    assert market.sessions == calendar.sessions(market.config.start, market.config.end)
    with pytest.raises(KeyError, match="2025-11-27"):
        market.stock_day_aggs(THANKSGIVING)
    with pytest.raises(KeyError, match="2025-11-29"):
        market.option_day_aggs(dt.date(2025, 11, 29))


def test_half_days_end_minute_bars_at_1pm_eastern(market: Market) -> None:
    for day, close in (
        (BLACK_FRIDAY, dt.time(13, 0)),
        (XMAS_EVE, dt.time(13, 0)),
        (dt.date(2025, 12, 1), dt.time(16, 0)),
    ):
        for table in (market.stock_minute_aggs(day), market.option_minute_aggs(day)):
            starts = table.column("window_start")
            first, last = _ny(pc.min(starts).as_py()), _ny(pc.max(starts).as_py())
            assert first.time() >= dt.time(9, 30) and first.date() == day
            assert (last + dt.timedelta(minutes=1)).time() <= close
        last_stock = _ny(pc.max(market.stock_minute_aggs(day).column("window_start")).as_py())
        assert (last_stock + dt.timedelta(minutes=1)).time() == close, "every stock trades the last minute"


def test_day_bars_start_at_midnight_new_york_in_nanoseconds(market: Market) -> None:
    day = dt.date(2025, 11, 3)  # first session after the DST change
    for table in (market.stock_day_aggs(day), market.option_day_aggs(day)):
        assert table.schema.field("window_start").type == pa.int64()
        assert set(table.column("window_start").to_pylist()) == {
            int(dt.datetime(2025, 11, 3, tzinfo=calendar.NEW_YORK).timestamp()) * 1_000_000_000
        }


# --- bars -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("day", [dt.date(2025, 10, 14), BLACK_FRIDAY, dt.date(2025, 12, 19)])
def test_minute_bars_add_up_to_the_daily_bars(market: Market, day: dt.date) -> None:
    _check_minutes_add_up(market.stock_day_aggs(day), market.stock_minute_aggs(day))
    _check_minutes_add_up(market.option_day_aggs(day), market.option_minute_aggs(day))


def test_fractional_volumes_still_add_up(sandbox_config: MarketConfig) -> None:
    market = Market(dataclasses.replace(sandbox_config, fractional_volume=True))
    day = market.sessions[20]
    daily = market.stock_day_aggs(day)
    assert daily.schema.field("volume").type == pa.float64()
    assert any(v != int(v) for v in daily.column("volume").to_pylist()), "some volumes are fractional"
    _check_minutes_add_up(daily, market.stock_minute_aggs(day))
    csv = flatfiles.render_csv(daily).decode()
    assert re.search(r"^[^,]+,\d+\.(25|5|75),", csv, re.MULTILINE)


def test_day_bars_are_consistent_and_polygon_typed(market: Market) -> None:
    table = market.stock_day_aggs(market.sessions[10])
    assert table.column_names == flatfiles.COLUMNS
    assert [str(f.type) for f in table.schema] == ["string", "int64", *["double"] * 4, "int64", "int64"]
    df = table.to_pandas()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] > 0).all() and (df["volume"] > 0).all()
    assert list(df["ticker"]) == sorted(df["ticker"])


def test_awkward_tickers_are_always_present(market: Market) -> None:
    traded = set(market.stock_day_aggs(market.sessions[3]).column("ticker").to_pylist())
    assert {"BRK.B", "ABCpA", "ABCPA", "CON"} <= traded
    listed = {t["ticker"]: t for t in market.tickers()}
    assert listed["ABCpA"]["type"] == "PFD" and listed["ABCPA"]["type"] == "CS"
    assert listed["BRK.B"]["name"] != listed["ABCpA"]["name"]


def test_a_halted_stock_has_no_row_that_day(market: Market) -> None:
    halts = market.halts()
    assert ("CON", market.sessions[len(market.sessions) // 3]) in halts
    for ticker, day in halts:
        assert ticker not in market.stock_day_aggs(day).column("ticker").to_pylist()
        assert ticker not in set(market.stock_minute_aggs(day).column("ticker").to_pylist())
        before = market.sessions[market.sessions.index(day) - 1]
        if ticker in {t["ticker"] for t in market.tickers(before) if t["active"]}:
            assert ticker in market.stock_day_aggs(before).column("ticker").to_pylist()


# --- corporate life ---------------------------------------------------------------------------------------


def _close(market: Market, ticker: str, day: dt.date) -> float:
    rows = market.stock_day_aggs(day).to_pandas().set_index("ticker")
    return float(rows.loc[ticker, "close"])


def test_splits_make_raw_prices_jump_by_the_ratio(market: Market) -> None:
    splits = {s["ticker"]: s for s in market.splits()}
    assert {"XYZ", "GONE"} <= set(splits)
    for ticker in ("XYZ", "GONE"):
        split = splits[ticker]
        assert split["id"].startswith("E") and split["split_from"] > 0 and split["split_to"] > 0
        executed = dt.date.fromisoformat(split["execution_date"])
        before = market.sessions[market.sessions.index(executed) - 1]
        ratio = split["split_to"] / split["split_from"]
        jump = _close(market, ticker, before) / _close(market, ticker, executed)
        assert ratio * 0.75 < jump < ratio * 1.33, (
            f"{ticker}: raw price moved {jump:.3f}x, split ratio {ratio}"
        )
    xyz = splits["XYZ"]
    assert (xyz["split_from"], xyz["split_to"]) == (2, 3)


def test_dividends_are_quarterly_cash_with_ordered_dates(market: Market) -> None:
    dividends = market.dividends()
    assert dividends and {d["dividend_type"] for d in dividends} == {"CD"}
    for d in dividends:
        assert d["cash_amount"] > 0 and d["frequency"] == 4 and d["currency"] == "USD"
        assert d["declaration_date"] < d["ex_dividend_date"] < d["record_date"] < d["pay_date"]
        assert d["declaration_date"] <= market.today.isoformat()


def test_ipo_delisting_and_ticker_change_inside_the_range(market: Market) -> None:
    first, last = market.sessions[0], market.today
    at_start = {t["ticker"]: t for t in market.tickers(first)}
    at_end = {t["ticker"]: t for t in market.tickers(last)}
    assert (
        "NWIP" not in at_start
        and at_end["NWIP"]["active"]
        and at_end["NWIP"]["list_date"] > first.isoformat()
    )
    assert "NWIP" not in market.stock_day_aggs(first).column("ticker").to_pylist()
    assert at_start["GONE"]["active"] and not at_end["GONE"]["active"] and "delisted_utc" in at_end["GONE"]
    assert "GONE" not in market.stock_day_aggs(last).column("ticker").to_pylist()
    assert "LGCY" in at_start and "NEWC" not in at_start and "NEWC" in at_end and "LGCY" not in at_end
    events = market.ticker_events("NEWC")
    changes = [(e["date"], e["ticker_change"]["ticker"]) for e in events["events"]]
    assert [t for _, t in changes] == ["NEWC", "LGCY"] and changes[0][0] > changes[1][0]
    renamed = dt.date.fromisoformat(changes[0][0])
    day_before = market.sessions[market.sessions.index(renamed) - 1]
    assert "LGCY" in market.stock_day_aggs(day_before).column("ticker").to_pylist()
    assert "NEWC" in market.stock_day_aggs(renamed).column("ticker").to_pylist()
    with pytest.raises(KeyError):
        market.ticker_events("NOPE")


# --- options ----------------------------------------------------------------------------------------------


def test_occ_tickers_parse_and_match_the_contracts(market: Market) -> None:
    roots: dict[str, set[str]] = {}
    expiries: set[dt.date] = set()
    for day in (market.sessions[5], market.today):
        for contract in market.options_contracts(day):
            match = OCC.match(contract["ticker"])
            assert match, contract["ticker"]
            root = contract["ticker"][2:-15]
            assert match["root"] == root
            expiry = dt.datetime.strptime(match["date"], "%y%m%d").date()
            assert expiry.isoformat() == contract["expiration_date"] and expiry >= day
            assert int(match["strike"]) == round(contract["strike_price"] * 1000)
            assert contract["contract_type"] == ("call" if match["cp"] == "C" else "put")
            roots.setdefault(root, set()).add(contract["underlying_ticker"])
            expiries.add(expiry)
    assert roots["BRKB"] == {"BRK.B"}, "a root that differs from its underlying"
    assert roots["XYZ1"] == {"XYZ"}, "an adjusted root with a digit after XYZ's 3-for-2 split"
    adjusted = [c for c in market.options_contracts(market.today) if c["ticker"].startswith("O:XYZ1")]
    assert adjusted and all(c["shares_per_contract"] == 150 for c in adjusted)
    monthly = {e for e in expiries if 15 <= e.day <= 21 and e.weekday() == 4}
    assert monthly and expiries - monthly, "weekly and monthly expiries"


def test_option_prices_are_consistent_with_the_underlying(market: Market) -> None:
    day = market.sessions[30]
    bars = market.option_day_aggs(day).to_pandas()
    bars["root"] = bars["ticker"].str[2:-15]
    bars["expiry"] = bars["ticker"].str[-15:-9]
    bars["cp"] = bars["ticker"].str[-9]
    bars["strike"] = bars["ticker"].str[-8:].astype(int) / 1000
    for (_, _, cp), chain in bars.groupby(["root", "expiry", "cp"]):
        closes = chain.sort_values("strike")["close"].to_numpy()
        if cp == "C":
            assert (closes[:-1] >= closes[1:]).all(), "calls get cheaper as the strike rises"
        else:
            assert (closes[:-1] <= closes[1:]).all(), "puts get dearer as the strike rises"
    spy = market.stock_day_aggs(day).to_pandas().set_index("ticker").loc["SPY", "close"]
    calls = bars[(bars["root"] == "SPY") & (bars["cp"] == "C")]
    deep = calls[calls["strike"] < spy * 0.9]
    assert (deep["close"] >= (spy - deep["strike"]) * 0.98).all(), "deep calls are worth at least intrinsic"


def test_far_strikes_trade_sparsely(sandbox_config: MarketConfig) -> None:
    market = Market(dataclasses.replace(sandbox_config, contracts_per_underlying=400))
    near = far = near_traded = far_traded = 0
    for day in market.sessions[10:20]:
        spots = market.stock_day_aggs(day).to_pandas().set_index("ticker")["close"]
        traded = set(market.option_day_aggs(day).column("ticker").to_pylist())
        for c in market.options_contracts(day):
            spot = spots.get(c["underlying_ticker"])
            if spot is None:
                continue
            distance = abs(c["strike_price"] * 100 / c["shares_per_contract"] / spot - 1)
            if distance < 0.05:
                near, near_traded = near + 1, near_traded + (c["ticker"] in traded)
            elif distance > 0.2:
                far, far_traded = far + 1, far_traded + (c["ticker"] in traded)
    assert near and far
    assert near_traded / near > 0.6 and far_traded / far < 0.5 * near_traded / near


# --- REST records ---------------------------------------------------------------------------------------


def test_news_has_tickers_and_sentiment_insights(market: Market) -> None:
    news = market.news()
    assert len(news) > 50 and len({n["id"] for n in news}) == len(news)
    for article in news:
        assert (
            article["tickers"]
            and article["publisher"]["name"]
            and article["article_url"].startswith("https://")
        )
        assert {i["ticker"] for i in article["insights"]} == set(article["tickers"])
        assert {i["sentiment"] for i in article["insights"]} <= {"positive", "negative", "neutral"}
        assert all(i["sentiment_reasoning"] for i in article["insights"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", article["published_utc"])
    assert {i["sentiment"] for n in news for i in n["insights"]} == {"positive", "negative", "neutral"}
    assert max(n["published_utc"] for n in news) < (market.today + dt.timedelta(days=1)).isoformat() + "T06"


def test_quarterly_financials_are_filed_after_the_period(market: Market) -> None:
    financials = market.financials()
    assert financials
    for report in financials:
        assert report["timeframe"] == "quarterly" and report["fiscal_period"] in {"Q1", "Q2", "Q3", "Q4"}
        assert report["start_date"] < report["end_date"] < report["filing_date"] <= market.today.isoformat()
        statements = report["financials"]
        assert {"income_statement", "balance_sheet", "cash_flow_statement"} <= set(statements)
        revenue = statements["income_statement"]["revenues"]
        assert revenue["unit"] == "USD" and isinstance(revenue["value"], float) and revenue["label"]
        assert len(report["tickers"]) == 1


def test_short_interest_twice_a_month_and_short_volume_daily(market: Market) -> None:
    interest = market.short_interest()
    by_month: dict[str, set[str]] = {}
    for row in interest:
        by_month.setdefault(row["settlement_date"][:7], set()).add(row["settlement_date"])
        assert row["short_interest"] > 0 and row["avg_daily_volume"] > 0 and row["days_to_cover"] > 0
    assert all(len(days) == 2 for month, days in by_month.items() if month < market.today.isoformat()[:7])
    volume = market.short_volume()
    day = market.sessions[7]
    rows = [r for r in volume if r["date"] == day.isoformat()]
    traded = market.stock_day_aggs(day).to_pandas().set_index("ticker")["volume"]
    assert {r["ticker"] for r in rows} == set(traded.index)
    for r in rows:
        assert r["total_volume"] == traded[r["ticker"]] and 0 < r["short_volume"] < r["total_volume"]
        venues = ("adf", "nasdaq_carteret", "nasdaq_chicago", "nyse")
        assert sum(r[f"{v}_short_volume"] for v in venues) == r["short_volume"]
        assert r["non_exempt_volume"] + r["exempt_volume"] == r["short_volume"]


def test_market_holidays_lists_upcoming_closures_and_half_days(sandbox_config: MarketConfig) -> None:
    market = Market(dataclasses.replace(sandbox_config, today=dt.date(2025, 11, 3)))
    holidays = market.market_holidays()
    thanksgiving = [h for h in holidays if h["date"] == THANKSGIVING.isoformat()]
    assert {h["exchange"] for h in thanksgiving} == {"NYSE", "NASDAQ"} and thanksgiving[0][
        "status"
    ] == "closed"
    assert thanksgiving[0]["name"] == "Thanksgiving"
    half = [h for h in holidays if h["date"] == BLACK_FRIDAY.isoformat()]
    assert half and half[0]["status"] == "early-close" and half[0]["close"] == "2025-11-28T18:00:00.000Z"
    assert all(h["date"] > "2025-11-03" for h in holidays)


# --- clock ----------------------------------------------------------------------------------------------


def test_clock_defaults_to_the_last_session_and_advances_by_sessions(sandbox_config: MarketConfig) -> None:
    market = Market(dataclasses.replace(sandbox_config, today=None))
    assert market.today == dt.date(2025, 12, 31) and market.served_sessions() == market.sessions
    market = Market(dataclasses.replace(sandbox_config, today=dt.date(2025, 11, 26)))
    assert market.advance() == BLACK_FRIDAY, "Thanksgiving is skipped"
    assert market.served_sessions()[-1] == BLACK_FRIDAY
    assert market.advance(1000) == market.sessions[-1], "never past the end"
    with pytest.raises(ValueError):
        market.advance(-1)


def test_bad_configs_are_rejected_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="end"):
        MarketConfig(start=dt.date(2025, 2, 1), end=dt.date(2025, 1, 1))
    with pytest.raises(ValueError, match="tickers"):
        MarketConfig(tickers=0)
    with pytest.raises(ValueError, match="seed"):
        MarketConfig(seed=-1)
    with pytest.raises(ValueError, match="today"):
        MarketConfig(start=dt.date(2025, 1, 2), end=dt.date(2025, 2, 1), today=dt.date(2025, 3, 1))


# --- flat-file rendering ----------------------------------------------------------------------------------


def test_keys_follow_polygons_layout_and_round_trip() -> None:
    day = dt.date(2025, 10, 17)
    assert flatfiles.key_for("stocks_daily", day) == "us_stocks_sip/day_aggs_v1/2025/10/2025-10-17.csv.gz"
    assert (
        flatfiles.key_for("options_minute", day) == "us_options_opra/minute_aggs_v1/2025/10/2025-10-17.csv.gz"
    )
    for dataset in flatfiles.PREFIXES:
        assert flatfiles.parse_key(flatfiles.key_for(dataset, day)) == (dataset, day)
    for bad in (
        "us_stocks_sip/day_aggs_v1/2025/11/2025-10-17.csv.gz",
        "us_stocks_sip/day_aggs_v1/2025/10/x.csv.gz",
    ):
        with pytest.raises(ValueError, match=re.escape(bad)):
            flatfiles.parse_key(bad)
    with pytest.raises(ValueError, match="crypto"):
        flatfiles.key_for("crypto", day)


def test_rendered_files_look_like_polygons(market: Market) -> None:
    day = market.sessions[12]
    data = flatfiles.render_file(market, "stocks_minute", day)
    assert data[:2] == b"\x1f\x8b" and data[4:8] == b"\x00\x00\x00\x00", "gzip with mtime 0"
    text = gzip.decompress(data).decode()
    lines = text.splitlines()
    assert lines[0] == "ticker,volume,open,close,high,low,window_start,transactions"
    assert '"' not in text
    row = re.compile(r"^[A-Za-z.]+,\d+,(\d+(\.\d{1,4})?,){4}\d{19},\d+$")
    assert all(row.match(line) for line in lines[1:]), next(line for line in lines[1:] if not row.match(line))
    options = gzip.decompress(flatfiles.render_file(market, "options_daily", day)).decode().splitlines()
    assert all(line.startswith("O:") for line in options[1:])
    sample = FLATFILE_SAMPLES / "stocks_day_candlesticks_example.csv"
    assert sample.read_text().splitlines()[0] == lines[0]


def test_republished_file_differs_in_one_close_and_stays_valid(market: Market) -> None:
    day = market.sessions[12]
    table = flatfiles.table_for(market, "stocks_daily", day)
    fixed = flatfiles.republished(table)
    assert flatfiles.render(fixed) != flatfiles.render(table)
    diff = [i for i, (a, b) in enumerate(zip(table.to_pylist(), fixed.to_pylist(), strict=True)) if a != b]
    assert diff == [0]
    row = fixed.to_pylist()[0]
    assert row["low"] <= row["close"] <= row["high"]


def test_a_large_day_is_generated_and_rendered_in_seconds() -> None:
    market = Market(MarketConfig(tickers=1500, start=dt.date(2025, 6, 2), end=dt.date(2025, 6, 13)))
    started = time.perf_counter()
    data = flatfiles.render_file(market, "stocks_minute", market.sessions[3])
    elapsed = time.perf_counter() - started
    rows = gzip.decompress(data).count(b"\n") - 1
    assert rows >= 1400 * 390
    assert elapsed < 20, f"{rows} minute rows took {elapsed:.1f}s"
