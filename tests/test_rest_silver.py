"""Silver models of the REST datasets, built by dbt over bronze loaded from the sandbox, against oracles
computed in Python from the records the sandbox served."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dbt_fixtures import query, run_dbt, write_market_sessions
from test_rest_ingest import START, Server, data_dir, ingest, server  # noqa: F401  (fixtures)

from loaders import calendar as nyse

NEW_YORK = ZoneInfo("America/New_York")
SCORES = {"positive": 1.0, "neutral": 0.0, "negative": -1.0}


@pytest.fixture
def silver(server: Server, data_dir: Path, tmp_path: Path) -> Path:  # noqa: F811
    ingest("fundamentals", dt.date(2024, 1, 1))
    ingest("news", START)
    # stock bars give the silver calendar its sessions (the as-of rule maps facts onto them)
    served = [d for d in server.market.sessions if d <= server.market.today]
    write_market_sessions(data_dir, server.market, served, options=False)
    run_dbt(
        [
            "build",
            "--select",
            "+fct_fundamentals_point_in_time",
            "+fct_news_sentiment_daily",
            "--indirect-selection",
            "cautious",
        ],
        data_dir,
        tmp_path,
    )
    return data_dir


def first_usable_session(available: dt.datetime, calendar: list[dt.date]) -> dt.date | None:
    """The first session of `calendar` whose regular close is after `available` (the documented rule)."""
    for day in calendar:
        if nyse.session_bounds(day)[1] > available:
            return day
    return None


def _accepted(filing: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(filing["acceptance_datetime"].replace("Z", "+00:00"))


def _visible_oracle(
    financials: list[dict[str, Any]], as_of: dt.date, calendar: list[dt.date]
) -> dict[tuple[str, ...], float]:
    """Per line item: the value of the newest period usable on or before `as_of` (latest filing of it)."""
    best: dict[tuple[str, ...], tuple[tuple[str, str], float]] = {}
    for filing in financials:
        usable = first_usable_session(_accepted(filing), calendar)
        if usable is None or usable > as_of:
            continue
        rank = (filing["end_date"], filing["filing_date"])
        for ticker in filing.get("tickers") or []:
            for statement, lines in filing["financials"].items():
                for item, point in lines.items():
                    key = (ticker, filing.get("timeframe"), statement, item)
                    if key not in best or rank > best[key][0]:
                        best[key] = (rank, float(point["value"]))
    return {key: value for key, (_, value) in best.items()}


def test_rest_marts_match_oracles_and_fundamentals_never_look_ahead(server: Server, silver: Path) -> None:  # noqa: F811
    """One dbt build (the slow part) checked twice: point-in-time fundamentals, then news sentiment."""
    _check_point_in_time(server, silver)
    _check_news_sentiment(server, silver)


def _check_point_in_time(sandbox_server: Server, silver: Path) -> None:
    financials = sandbox_server.market.financials()
    calendar = nyse.sessions(dt.date(2024, 1, 2), dt.date(2026, 12, 31))  # silver's calendar: the exchange's
    filing_dates = sorted({dt.date.fromisoformat(f["filing_date"]) for f in financials})
    assert len(filing_dates) > 3
    # filings accepted after the close are visible from the next session, never on their filing date
    late = [f for f in financials if _accepted(f).astimezone(NEW_YORK).hour >= 16]
    assert late, "the sandbox accepts filings after the close"
    # probing on filing dates checks that those are not visible until the next session
    assert query(
        silver, "select count(*) from fct_fundamentals_point_in_time where filing_date > valid_from_date"
    ) == [(0,)]
    probes = [
        filing_dates[0] - dt.timedelta(days=1),
        filing_dates[0],
        *filing_dates[1::3],
        sandbox_server.market.today,
    ]
    for as_of in probes:
        rows = query(
            silver,
            "select ticker, timeframe, financial_statement, line_item, reported_value "
            "from fct_fundamentals_point_in_time "
            f"where valid_from_date <= date '{as_of}' and (valid_to_date is null or date '{as_of}' < valid_to_date)",
        )
        visible = {tuple(r[:4]): r[4] for r in rows}
        assert len(visible) == len(rows), f"two values visible for one line item on {as_of}"
        assert visible == pytest.approx(_visible_oracle(financials, as_of, calendar)), as_of
    assert not query(
        silver,
        f"select 1 from fct_fundamentals_point_in_time where valid_from_date < date '{filing_dates[0]}'",
    )


def _check_news_sentiment(sandbox_server: Server, silver: Path) -> None:
    expected: dict[tuple[str, dt.date], list[Any]] = defaultdict(lambda: [0, [], 0, 0])
    calendar = nyse.sessions(dt.date(2024, 1, 2), dt.date(2026, 12, 31))  # silver's calendar: the exchange's
    after_close = 0
    for article in sandbox_server.market.news():
        if article["published_utc"] < START.isoformat():
            continue
        published = dt.datetime.fromisoformat(article["published_utc"].replace("Z", "+00:00"))
        day = first_usable_session(published, calendar)
        if day is None:
            continue  # after the last loaded session's close: not usable yet
        after_close += day != published.astimezone(NEW_YORK).date()
        sentiments = {i["ticker"]: i["sentiment"] for i in article.get("insights") or []}
        for ticker in set(article["tickers"]):
            entry = expected[(ticker, day)]
            entry[0] += 1
            if ticker in sentiments:
                entry[1].append(SCORES[sentiments[ticker]])
                entry[2] += sentiments[ticker] == "positive"
                entry[3] += sentiments[ticker] == "negative"
    rows = query(
        silver,
        "select ticker, session_date, article_count, mean_sentiment_score, positive_count, negative_count "
        "from fct_news_sentiment_daily",
    )
    assert after_close > 0, "some articles are published after the close and count on the next session"
    got = {(r[0], r[1]): r[2:] for r in rows}
    assert got.keys() == expected.keys()
    for key, (count, scores, positive, negative) in expected.items():
        mean = sum(scores) / len(scores) if scores else None
        assert got[key][0] == count and got[key][2:] == (positive, negative), key
        assert got[key][1] == pytest.approx(mean), key
