"""Silver models of the REST datasets, built by dbt over bronze loaded from the sandbox, against oracles
computed in Python from the records the sandbox served."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dbt_fixtures import query, run_dbt
from test_rest_ingest import START, Server, data_dir, ingest, server  # noqa: F401  (fixtures)

NEW_YORK = ZoneInfo("America/New_York")
SCORES = {"positive": 1.0, "neutral": 0.0, "negative": -1.0}


@pytest.fixture
def silver(server: Server, data_dir: Path, tmp_path: Path) -> Path:  # noqa: F811
    ingest("fundamentals", dt.date(2024, 1, 1))
    ingest("news", START)
    run_dbt(
        ["build", "--select", "+fct_fundamentals_point_in_time", "+fct_news_sentiment_daily"],
        data_dir,
        tmp_path,
    )
    return data_dir


def _visible_oracle(financials: list[dict[str, Any]], as_of: dt.date) -> dict[tuple[str, ...], float]:
    """Per line item: the value of the newest period filed on or before `as_of` (latest filing of it)."""
    best: dict[tuple[str, ...], tuple[tuple[str, str], float]] = {}
    for filing in financials:
        if dt.date.fromisoformat(filing["filing_date"]) > as_of:
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
    filing_dates = sorted({dt.date.fromisoformat(f["filing_date"]) for f in financials})
    assert len(filing_dates) > 3
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
        assert visible == pytest.approx(_visible_oracle(financials, as_of)), as_of
    assert not query(
        silver,
        f"select 1 from fct_fundamentals_point_in_time where valid_from_date < date '{filing_dates[0]}'",
    )


def _check_news_sentiment(sandbox_server: Server, silver: Path) -> None:
    expected: dict[tuple[str, dt.date], list[Any]] = defaultdict(lambda: [0, [], 0, 0])
    for article in sandbox_server.market.news():
        if article["published_utc"] < START.isoformat():
            continue
        published = dt.datetime.fromisoformat(article["published_utc"].replace("Z", "+00:00"))
        day = published.astimezone(NEW_YORK).date()
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
        "select ticker, news_date, article_count, mean_sentiment_score, positive_count, negative_count "
        "from fct_news_sentiment_daily",
    )
    got = {(r[0], r[1]): r[2:] for r in rows}
    assert got.keys() == expected.keys()
    for key, (count, scores, positive, negative) in expected.items():
        mean = sum(scores) / len(scores) if scores else None
        assert got[key][0] == count and got[key][2:] == (positive, negative), key
        assert got[key][1] == pytest.approx(mean), key
