"""Polygon's own Python client (`massive`), pointed at the sandbox, reads every dataset the loaders use.

If the official client can parse and page through what the sandbox serves, so can code written for the
real service.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from massive import RESTClient


@pytest.fixture
def official(sandbox: Any) -> Iterator[RESTClient]:
    client = RESTClient(api_key=sandbox.env()["POLYGON_API_KEY"], base=sandbox.rest_url, retries=0)
    yield client
    client.client.clear()
    client.vx.client.clear()


def test_aggregates_day_and_minute_across_pages(sandbox: Any, official: RESTClient) -> None:
    market = sandbox.market
    served = market.served_sessions()
    first, last = served[-10], served[-1]
    days = official.get_aggs("SPY", 1, "day", first.isoformat(), last.isoformat(), adjusted=False)
    traded = [d for d in served[-10:] if "SPY" in market.stock_day_aggs(d)["ticker"].to_pylist()]
    assert [dt.datetime.fromtimestamp(a.timestamp / 1000, tz=dt.UTC).date() for a in days] == traded
    flat = next(r for r in market.stock_day_aggs(last).to_pylist() if r["ticker"] == "SPY")
    assert (days[-1].open, days[-1].close, days[-1].volume) == (flat["open"], flat["close"], flat["volume"])
    # list_aggs follows next_url itself: 2 sessions of minute bars in pages of 300
    minutes = list(
        official.list_aggs("SPY", 1, "minute", served[-2].isoformat(), last.isoformat(), limit=300)
    )
    expected = sum(
        1 for day in served[-2:] for r in market.stock_minute_aggs(day).to_pylist() if r["ticker"] == "SPY"
    )
    stamps = [a.timestamp for a in minutes]
    assert len(minutes) == expected and stamps == sorted(set(stamps))
    assert sum(a.volume for a in minutes[-expected // 2 :]) > 0


def test_grouped_daily(sandbox: Any, official: RESTClient) -> None:
    day = sandbox.market.served_sessions()[-1]
    bars = official.get_grouped_daily_aggs(day.isoformat(), adjusted=False)
    flat = {r["ticker"]: r for r in sandbox.market.stock_day_aggs(day).to_pylist()}
    assert {b.ticker for b in bars} == set(flat)
    assert all(b.close == flat[b.ticker]["close"] and b.vwap is not None for b in bars)


def test_news_with_insights(sandbox: Any, official: RESTClient) -> None:
    articles = list(official.list_ticker_news(limit=20))
    assert len(articles) == len(sandbox.market.news()) > 20, "every page was followed"
    assert len({a.id for a in articles}) == len(articles)
    assert all(a.tickers and a.publisher.name for a in articles)
    assert {i.sentiment for a in articles for i in a.insights} <= {"positive", "negative", "neutral"}


def test_tickers_across_pages(sandbox: Any, official: RESTClient) -> None:
    tickers = [t.ticker for t in official.list_tickers(market="stocks", limit=4)]
    expected = sorted(t["ticker"] for t in sandbox.market.tickers(sandbox.market.today) if t["active"])
    assert tickers == expected and len(tickers) > 8
    details = official.get_ticker_details("BRK.B")
    assert details.ticker == "BRK.B" and details.active is True


def test_corporate_actions(sandbox: Any, official: RESTClient) -> None:
    splits = list(official.list_splits(limit=2))
    assert {(s.ticker, s.execution_date) for s in splits} == {
        (s["ticker"], s["execution_date"]) for s in sandbox.market.splits()
    }
    dividends = list(official.list_dividends(limit=5))
    assert len(dividends) == len(sandbox.market.dividends()) and all(d.cash_amount > 0 for d in dividends)
    events = official.get_ticker_events("NEWC", types="ticker_change")
    assert events.events, "NEWC carries its ticker-change history"


def test_financials(sandbox: Any, official: RESTClient) -> None:
    filings = list(official.vx.list_stock_financials(limit=5, sort="filing_date", order="asc"))
    assert len(filings) == len(sandbox.market.financials()) > 5
    first = filings[0]
    assert first.financials.income_statement is not None and first.financials.balance_sheet is not None
    assert first.financials.cash_flow_statement is not None and first.filing_date


def test_options_contracts(sandbox: Any, official: RESTClient) -> None:
    underlying = sandbox.market.options_contracts(sandbox.market.today)[0]["underlying_ticker"]
    contracts = list(official.list_options_contracts(underlying_ticker=underlying, limit=6))
    assert len(contracts) > 6 and all(c.underlying_ticker == underlying for c in contracts)
    one = official.get_options_contract(contracts[0].ticker)
    assert one.ticker == contracts[0].ticker and one.strike_price == contracts[0].strike_price


def test_short_data_and_market_calendar(sandbox: Any, official: RESTClient) -> None:
    interest = list(official.list_short_interest(ticker="SPY", limit=3))
    assert interest and all(r.ticker == "SPY" and r.short_interest > 0 for r in interest)
    volume = list(official.list_short_volume(ticker="SPY", limit=5))
    assert len(volume) == sum(r["ticker"] == "SPY" for r in sandbox.market.short_volume()) > 5
    holidays = official.get_market_holidays()
    assert holidays and all(h.date > sandbox.market.today.isoformat() for h in holidays)
    assert official.get_market_status().market == "closed"
