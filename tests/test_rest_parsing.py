"""Every relevant payload of Polygon's official client mocks and OpenAPI examples parses into typed bronze tables."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from reference_files import OPENAPI_SPEC, REST_MOCKS

from loaders.rest import parsing

MOCKS = REST_MOCKS
SPEC = OPENAPI_SPEC


def _load(relative: str) -> Any:
    return json.loads((MOCKS / relative).read_text())


def _mocks(prefix: str) -> list[Path]:
    found = sorted(p for p in MOCKS.rglob("*.json") if p.relative_to(MOCKS).as_posix().startswith(prefix))
    assert found, f"no mock under {prefix}"
    return found


def _spec_example(path: str) -> Any:
    spec = json.loads(SPEC.read_text())
    return spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["example"]


def test_news_mock_and_spec_example_parse_with_list_columns() -> None:
    for file in _mocks("v2/reference/news"):
        table = parsing.news(json.loads(file.read_text())["results"])["news"]
        assert table.num_rows >= 1
        row = table.to_pylist()[0]
        assert row["id"] == "JeJEhAVoKaqJ2zF9nzQYMg07UlEeWlis6Dsop33TPQY"
        assert row["published_utc"] == dt.datetime(2022, 4, 28, 17, 8, tzinfo=dt.UTC)
        assert row["published_date"] == dt.date(2022, 4, 28)
        assert row["tickers"] == ["MSFT", "TSN", "NFLX", "AMZN"]
        assert row["publisher_name"] == "MarketWatch"
        assert row["insights"] is None
    example = parsing.news(_spec_example("/v2/reference/news")["results"])["news"]
    insight = example.to_pylist()[0]["insights"][0]
    assert insight["ticker"] == "UBS" and insight["sentiment"] == "positive"
    assert example.schema.field("insights").type == pa.list_(parsing.INSIGHT)


def test_financials_become_long_form_line_items_and_a_filing_header() -> None:
    payload = _load("vX/reference/financials.json")["results"]
    tables = parsing.financials(payload, requested_ticker="NXPI")
    items, header = tables["financials"], tables["financial_filings"]
    assert header.num_rows == 1
    statements = payload[0]["financials"]
    assert items.num_rows == sum(len(lines) for lines in statements.values())
    rows = {(r["statement"], r["line_item"]): r for r in items.to_pylist()}
    eps = rows[("income_statement", "diluted_earnings_per_share")]
    assert eps["value"] == pytest.approx(2.48)
    assert eps["unit"] == "USD / shares"
    assert eps["ticker"] == "NXPI"
    assert eps["fiscal_period"] == "Q1" and eps["fiscal_year"] == 2022
    assert eps["filing_date"] == dt.date(2022, 5, 3)
    assert len({r["filing_id"] for r in rows.values()}) == 1
    # A filing listing two tickers gives each its own rows.
    both = parsing.financials([{**payload[0], "tickers": ["GOOG", "GOOGL"]}])
    assert both["financials"].num_rows == 2 * items.num_rows
    assert set(both["financial_filings"].column("ticker").to_pylist()) == {"GOOG", "GOOGL"}
    spec = parsing.financials(_spec_example("/vX/reference/financials")["results"])
    assert spec["financials"].num_rows > 0


def test_corporate_actions_parse_and_get_stable_ids_when_polygon_omits_them() -> None:
    splits = parsing.splits(_load("v3/reference/splits.json")["results"])["splits"]
    assert splits.num_rows == 10
    rows = splits.to_pylist()
    assert rows[0]["ticker"] == "GOOGL" and rows[0]["split_to"] == 20.0
    assert rows[0]["execution_date"] == dt.date(2022, 7, 18)
    assert len({r["id"] for r in rows}) == 10
    again = parsing.splits(_load("v3/reference/splits.json")["results"])["splits"]
    assert again.column("id").to_pylist() == splits.column("id").to_pylist()
    dividends = parsing.dividends(_load("v3/reference/dividends.json")["results"])["dividends"]
    assert dividends.num_rows == 10
    first = dividends.to_pylist()[0]
    assert first["cash_amount"] == pytest.approx(0.59375)
    assert first["ex_dividend_date"] == dt.date(2025, 6, 12)
    assert first["frequency"] == 4
    with_id = parsing.splits([{**_load("v3/reference/splits.json")["results"][0], "id": "E123"}])["splits"]
    assert with_id.column("id").to_pylist() == ["E123"]


def test_ticker_events_mock_parses_one_row_per_event() -> None:
    payload = _load("vX/reference/tickers/META/events&types=ticker_change.json")["results"]
    table = parsing.ticker_events(payload, "META")["ticker_events"]
    rows = sorted(table.to_pylist(), key=lambda r: r["event_date"])
    assert [(r["event_date"], r["new_ticker"]) for r in rows] == [
        (dt.date(2012, 5, 18), "FB"),
        (dt.date(2022, 6, 11), "META"),
    ]
    assert all(r["event_type"] == "ticker_change" and r["composite_figi"] == "BBG000MM2P62" for r in rows)
    spec = parsing.ticker_events(_spec_example("/vX/reference/tickers/{id}/events")["results"], "META")
    assert spec["ticker_events"].num_rows == 2


def test_reference_listings_parse_every_page() -> None:
    total = 0
    for file in _mocks("v3/reference/tickers"):
        if "/tickers/" in file.relative_to(MOCKS).as_posix():
            continue  # single-ticker details and types are other endpoints
        table = parsing.tickers(json.loads(file.read_text())["results"], dt.date(2022, 4, 27))["tickers"]
        total += table.num_rows
        assert table.schema.field("last_updated_utc").type == parsing.TS
    assert total == 4
    contracts = 0
    for file in _mocks("v3/reference/options/contracts"):
        results = json.loads(file.read_text())["results"]
        table = parsing.options_contracts(results if isinstance(results, list) else [results])[
            "options_contracts"
        ]
        contracts += table.num_rows
        assert table.column("ticker").to_pylist()[0].startswith("O:")
    assert contracts >= 21
    holidays = parsing.market_holidays(_load("v1/marketstatus/upcoming.json"))["market_holidays"]
    early = [r for r in holidays.to_pylist() if r["status"] == "early-close"]
    assert holidays.num_rows == 14 and len(early) == 2
    assert early[0]["close_at"] == dt.datetime(2022, 11, 25, 18, 0, tzinfo=dt.UTC)


def test_short_data_shapes_of_the_official_client_parse() -> None:
    interest = parsing.short_interest(
        [
            {
                "ticker": "A",
                "settlement_date": "2025-03-14",
                "short_interest": 2138787,
                "avg_daily_volume": 1496727,
                "days_to_cover": 1.43,
            }
        ]
    )["short_interest"]
    assert interest.to_pylist()[0]["settlement_date"] == dt.date(2025, 3, 14)
    volume = parsing.short_volume(
        [
            {
                "ticker": "A",
                "date": "2025-03-25",
                "short_volume": 181,
                "total_volume": 567,
                "short_volume_ratio": 31.92,
            }
        ]
    )["short_volume"]
    row = volume.to_pylist()[0]
    assert row["short_volume"] == 181 and row["nyse_short_volume"] is None


def test_bad_values_name_dataset_record_and_field() -> None:
    with pytest.raises(parsing.ParseError, match=r"splits: record 'X1': field 'split_to'"):
        parsing.splits(
            [{"id": "X1", "ticker": "A", "execution_date": "2024-01-02", "split_from": 1, "split_to": "two"}]
        )
    with pytest.raises(parsing.ParseError, match=r"news: record .*field 'published_utc': required"):
        parsing.news([{"id": "n1", "title": "t"}])
    with pytest.raises(parsing.ParseError, match=r"short_volume: .*field 'short_volume'"):
        parsing.short_volume([{"ticker": "A", "date": "2025-01-02", "short_volume": 1.5}])


def test_a_reused_symbol_keeps_its_active_listing() -> None:
    from loaders.rest import one_row_per_ticker

    day = dt.date(2025, 1, 2)
    delisted = {
        "ticker": "ABC",
        "name": "Old ABC",
        "market": "stocks",
        "locale": "us",
        "active": False,
        "delisted_utc": "2020-01-02T00:00:00Z",
    }
    active = {"ticker": "ABC", "name": "New ABC", "market": "stocks", "locale": "us", "active": True}
    for order in ([delisted, active], [active, delisted]):
        table = one_row_per_ticker(parsing.tickers(order, day)["tickers"])
        assert table.column("name").to_pylist() == ["New ABC"]


def test_every_openapi_example_of_our_endpoints_parses() -> None:
    day = dt.date(2025, 1, 2)
    parsers = {
        "/v2/reference/news": parsing.news,
        "/vX/reference/financials": parsing.financials,
        "/v3/reference/splits": parsing.splits,
        "/v3/reference/dividends": parsing.dividends,
        "/v3/reference/tickers": lambda r: parsing.tickers(r, day),
        "/v3/reference/options/contracts": parsing.options_contracts,
        "/v1/marketstatus/upcoming": parsing.market_holidays,
        "/vX/reference/tickers/{id}/events": lambda r: parsing.ticker_events(r, "META"),
    }
    parsed = 0
    for path, parse in parsers.items():
        try:
            example = _spec_example(path)
        except KeyError:
            continue  # the spec has no example for this endpoint
        results = example if isinstance(example, list) else example["results"]
        tables = parse(results)
        assert sum(t.num_rows for t in tables.values()) > 0, path
        parsed += 1
    assert parsed >= 6


def test_long_ranges_are_cut_into_calendar_months() -> None:
    from loaders.rest import _months

    days = _months(dt.date(2024, 1, 15), dt.date(2024, 3, 2))
    assert days == [
        (dt.date(2024, 1, 15), dt.date(2024, 1, 31)),
        (dt.date(2024, 2, 1), dt.date(2024, 2, 29)),
        (dt.date(2024, 3, 1), dt.date(2024, 3, 2)),
    ]
    start = dt.datetime(2024, 12, 20, 9, 30, tzinfo=dt.UTC)
    stop = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    assert _months(start, stop) == [
        (start, dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        (dt.datetime(2025, 1, 1, tzinfo=dt.UTC), stop),
    ]
