"""Polygon REST results -> typed Arrow tables, one schema per bronze table.

Field names and meanings stay Polygon's (bronze holds no business logic); nested objects are flattened
where they are 1:1 (`publisher.name` -> `publisher_name`) and kept as list columns where they repeat
(news `tickers`, `insights`). Bad values raise `ParseError` naming the dataset, the record and the field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

NEW_YORK = ZoneInfo("America/New_York")
TS = pa.timestamp("us", tz="UTC")


class ParseError(ValueError):
    """A record that does not have the shape Polygon documents."""


def _fail(dataset: str, record: Mapping[str, Any], field: str, value: Any, why: str) -> ParseError:
    ident = record.get("id") or record.get("ticker") or record.get("cik") or "?"
    return ParseError(f"{dataset}: record {ident!r}: field {field!r}: {why} (got {value!r})")


def _get(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def to_date(value: Any) -> dt.date | None:
    """Polygon dates: `YYYY-MM-DD`, `YYYYMMDD`, or an ISO timestamp (its date part)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value)
    if len(text) == 8 and text.isdigit():
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    return dt.date.fromisoformat(text[:10])


def to_timestamp(value: Any) -> dt.datetime | None:
    """ISO-8601 timestamps (`Z` or offset) and Unix milliseconds -> aware UTC datetimes."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    parsed = dt.datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def eastern_compact_timestamp(value: Any) -> dt.datetime | None:
    """EDGAR acceptance times: `YYYYMMDDHHMMSS` in New York time -> UTC."""
    if value is None or value == "":
        return None
    text = str(value)
    if len(text) == 14 and text.isdigit():
        local = dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=NEW_YORK)
        return local.astimezone(dt.UTC)
    return to_timestamp(text)


def to_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("boolean where a number is expected")
    return float(value)


def to_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("boolean where an integer is expected")
    number = float(value)
    if not number.is_integer():
        raise ValueError("not a whole number")
    return int(number)


def to_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise ValueError("object where a string is expected")
    return str(value)


def to_bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if str(value).lower() in {"true", "false"}:
        return str(value).lower() == "true"
    raise ValueError("not a boolean")


def to_str_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("not a list")
    return [str(v) for v in value]


Converter = Callable[[Any], Any]
Column = tuple[str, pa.DataType, str, Converter]  # bronze name, type, Polygon field path, converter


def _table(dataset: str, columns: Sequence[Column], records: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Typed table from records; every column of `columns` is present even when Polygon omitted it."""
    data: dict[str, list[Any]] = {name: [] for name, *_ in columns}
    for record in records:
        for name, _, path, convert in columns:
            raw = _get(record, path)
            try:
                data[name].append(convert(raw))
            except (TypeError, ValueError) as exc:
                raise _fail(dataset, record, path, raw, str(exc)) from None
    schema = pa.schema([pa.field(name, dtype) for name, dtype, *_ in columns])
    return pa.table({name: pa.array(data[name], type=dtype) for name, dtype, *_ in columns}, schema=schema)


def stable_id(*parts: Any) -> str:
    """Deterministic id for records Polygon serves without one (older splits/dividends payloads)."""
    return hashlib.sha256("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def _require(dataset: str, records: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> None:
    for record in records:
        if not isinstance(record, Mapping):
            raise ParseError(f"{dataset}: expected an object in results, got {type(record).__name__}")
        for field in fields:
            if _get(record, field) in (None, ""):
                raise _fail(dataset, record, field, None, "required field is missing")


# -- news -------------------------------------------------------------------------------------------

INSIGHT = pa.struct(
    [
        pa.field("ticker", pa.string()),
        pa.field("sentiment", pa.string()),
        pa.field("sentiment_reasoning", pa.string()),
    ]
)


def _insights(value: Any) -> list[dict[str, str | None]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("not a list")
    out = []
    for item in value:
        if not isinstance(item, Mapping):
            raise ValueError("insight is not an object")
        out.append(
            {
                "ticker": to_str(item.get("ticker")),
                "sentiment": to_str(item.get("sentiment")),
                "sentiment_reasoning": to_str(item.get("sentiment_reasoning")),
            }
        )
    return out


NEWS_COLUMNS: list[Column] = [
    ("id", pa.string(), "id", to_str),
    ("published_utc", TS, "published_utc", to_timestamp),
    ("published_date", pa.date32(), "published_utc", to_date),
    ("title", pa.string(), "title", to_str),
    ("author", pa.string(), "author", to_str),
    ("description", pa.string(), "description", to_str),
    ("article_url", pa.string(), "article_url", to_str),
    ("amp_url", pa.string(), "amp_url", to_str),
    ("image_url", pa.string(), "image_url", to_str),
    ("publisher_name", pa.string(), "publisher.name", to_str),
    ("publisher_homepage_url", pa.string(), "publisher.homepage_url", to_str),
    ("publisher_logo_url", pa.string(), "publisher.logo_url", to_str),
    ("publisher_favicon_url", pa.string(), "publisher.favicon_url", to_str),
    ("keywords", pa.list_(pa.string()), "keywords", to_str_list),
    ("tickers", pa.list_(pa.string()), "tickers", to_str_list),
    ("insights", pa.list_(INSIGHT), "insights", _insights),
]


def news(results: list[Mapping[str, Any]]) -> dict[str, pa.Table]:
    _require("news", results, ("id", "published_utc"))
    return {"news": _table("news", NEWS_COLUMNS, results)}


# -- fundamentals -----------------------------------------------------------------------------------

STATEMENTS = ("balance_sheet", "income_statement", "cash_flow_statement", "comprehensive_income")

FILING_COLUMNS: list[Column] = [
    ("filing_id", pa.string(), "filing_id", to_str),
    ("ticker", pa.string(), "ticker", to_str),
    ("cik", pa.string(), "cik", to_str),
    ("company_name", pa.string(), "company_name", to_str),
    ("timeframe", pa.string(), "timeframe", to_str),
    ("fiscal_period", pa.string(), "fiscal_period", to_str),
    ("fiscal_year", pa.int32(), "fiscal_year", to_int),
    ("start_date", pa.date32(), "start_date", to_date),
    ("end_date", pa.date32(), "end_date", to_date),
    ("filing_date", pa.date32(), "filing_date", to_date),
    ("acceptance_datetime", TS, "acceptance_datetime", eastern_compact_timestamp),
    ("source_filing_url", pa.string(), "source_filing_url", to_str),
    ("source_filing_file_url", pa.string(), "source_filing_file_url", to_str),
]

LINE_ITEM_COLUMNS: list[Column] = [
    ("filing_id", pa.string(), "filing_id", to_str),
    ("ticker", pa.string(), "ticker", to_str),
    ("cik", pa.string(), "cik", to_str),
    ("timeframe", pa.string(), "timeframe", to_str),
    ("fiscal_period", pa.string(), "fiscal_period", to_str),
    ("fiscal_year", pa.int32(), "fiscal_year", to_int),
    ("start_date", pa.date32(), "start_date", to_date),
    ("end_date", pa.date32(), "end_date", to_date),
    ("filing_date", pa.date32(), "filing_date", to_date),
    ("statement", pa.string(), "statement", to_str),
    ("line_item", pa.string(), "line_item", to_str),
    ("label", pa.string(), "label", to_str),
    ("value", pa.float64(), "value", to_float),
    ("unit", pa.string(), "unit", to_str),
    ("display_order", pa.int32(), "order", to_int),
]


def financials(results: list[Mapping[str, Any]], requested_ticker: str | None = None) -> dict[str, pa.Table]:
    """Filings -> a header table (one row per filing and ticker) and line items in long form.

    A filing lists every ticker of the company (GOOG and GOOGL); each gets its rows. Payloads without
    `tickers` (older responses) take the ticker that was asked for, else an empty ticker.
    """
    _require("fundamentals", results, ("cik", "filing_date", "fiscal_period"))
    headers: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for record in results:
        # no ticker at all: "" (a key column cannot be null; staging turns it back into null)
        tickers = record.get("tickers") or [requested_ticker or ""]
        filing_id = stable_id(
            record.get("cik"),
            record.get("timeframe"),
            record.get("fiscal_year"),
            record.get("fiscal_period"),
            record.get("start_date"),
            record.get("end_date"),
            record.get("filing_date"),
            record.get("source_filing_url"),
        )
        statements = record.get("financials") or {}
        if not isinstance(statements, Mapping):
            raise _fail("fundamentals", record, "financials", statements, "not an object")
        for ticker in tickers:
            header = {**record, "filing_id": filing_id, "ticker": ticker}
            headers.append(header)
            for statement, lines in statements.items():
                if not isinstance(lines, Mapping):
                    raise _fail("fundamentals", record, f"financials.{statement}", lines, "not an object")
                for line_item, point in lines.items():
                    if not isinstance(point, Mapping):
                        raise _fail(
                            "fundamentals",
                            record,
                            f"financials.{statement}.{line_item}",
                            point,
                            "not an object",
                        )
                    items.append(
                        {
                            **header,
                            "statement": statement,
                            "line_item": line_item,
                            "label": point.get("label"),
                            "value": point.get("value"),
                            "unit": point.get("unit"),
                            "order": point.get("order"),
                        }
                    )
    return {
        "financial_filings": _table("fundamentals", FILING_COLUMNS, headers),
        "financials": _table("fundamentals", LINE_ITEM_COLUMNS, items),
    }


# -- short data ---------------------------------------------------------------------------------------

SHORT_INTEREST_COLUMNS: list[Column] = [
    ("ticker", pa.string(), "ticker", to_str),
    ("settlement_date", pa.date32(), "settlement_date", to_date),
    ("short_interest", pa.int64(), "short_interest", to_int),
    ("avg_daily_volume", pa.int64(), "avg_daily_volume", to_int),
    ("days_to_cover", pa.float64(), "days_to_cover", to_float),
]

_SHORT_VOLUME_COUNTS = (
    "short_volume",
    "total_volume",
    "exempt_volume",
    "non_exempt_volume",
    "adf_short_volume",
    "adf_short_volume_exempt",
    "nasdaq_carteret_short_volume",
    "nasdaq_carteret_short_volume_exempt",
    "nasdaq_chicago_short_volume",
    "nasdaq_chicago_short_volume_exempt",
    "nyse_short_volume",
    "nyse_short_volume_exempt",
)
SHORT_VOLUME_COLUMNS: list[Column] = [
    ("ticker", pa.string(), "ticker", to_str),
    ("date", pa.date32(), "date", to_date),
    *[(name, pa.int64(), name, to_int) for name in _SHORT_VOLUME_COUNTS],
    ("short_volume_ratio", pa.float64(), "short_volume_ratio", to_float),
]


def short_interest(results: list[Mapping[str, Any]]) -> dict[str, pa.Table]:
    _require("short_interest", results, ("ticker", "settlement_date"))
    return {"short_interest": _table("short_interest", SHORT_INTEREST_COLUMNS, results)}


def short_volume(results: list[Mapping[str, Any]]) -> dict[str, pa.Table]:
    _require("short_volume", results, ("ticker", "date"))
    return {"short_volume": _table("short_volume", SHORT_VOLUME_COLUMNS, results)}


# -- corporate actions --------------------------------------------------------------------------------

SPLIT_COLUMNS: list[Column] = [
    ("id", pa.string(), "id", to_str),
    ("ticker", pa.string(), "ticker", to_str),
    ("execution_date", pa.date32(), "execution_date", to_date),
    ("split_from", pa.float64(), "split_from", to_float),
    ("split_to", pa.float64(), "split_to", to_float),
]

DIVIDEND_COLUMNS: list[Column] = [
    ("id", pa.string(), "id", to_str),
    ("ticker", pa.string(), "ticker", to_str),
    ("ex_dividend_date", pa.date32(), "ex_dividend_date", to_date),
    ("declaration_date", pa.date32(), "declaration_date", to_date),
    ("record_date", pa.date32(), "record_date", to_date),
    ("pay_date", pa.date32(), "pay_date", to_date),
    ("cash_amount", pa.float64(), "cash_amount", to_float),
    ("currency", pa.string(), "currency", to_str),
    ("dividend_type", pa.string(), "dividend_type", to_str),
    ("frequency", pa.int64(), "frequency", to_int),
]


def splits(results: list[Mapping[str, Any]]) -> dict[str, pa.Table]:
    _require("splits", results, ("ticker", "execution_date", "split_from", "split_to"))
    rows = [
        {
            **r,
            "id": r.get("id") or stable_id(r["ticker"], r["execution_date"], r["split_from"], r["split_to"]),
        }
        for r in results
    ]
    return {"splits": _table("splits", SPLIT_COLUMNS, rows)}


def dividends(results: list[Mapping[str, Any]]) -> dict[str, pa.Table]:
    _require("dividends", results, ("ticker", "ex_dividend_date", "cash_amount"))
    rows = [
        {
            **r,
            "id": r.get("id")
            or stable_id(r["ticker"], r["ex_dividend_date"], r["cash_amount"], r.get("dividend_type")),
        }
        for r in results
    ]
    return {"dividends": _table("dividends", DIVIDEND_COLUMNS, rows)}


TICKER_EVENT_COLUMNS: list[Column] = [
    ("id", pa.string(), "id", to_str),
    ("ticker", pa.string(), "ticker", to_str),
    ("name", pa.string(), "name", to_str),
    ("composite_figi", pa.string(), "composite_figi", to_str),
    ("cik", pa.string(), "cik", to_str),
    ("event_type", pa.string(), "event_type", to_str),
    ("event_date", pa.date32(), "date", to_date),
    ("new_ticker", pa.string(), "ticker_change.ticker", to_str),
]


def ticker_events(results: Mapping[str, Any], requested_ticker: str) -> dict[str, pa.Table]:
    """One row per event of one ticker's history (`results` is an object, not a list)."""
    if not isinstance(results, Mapping):
        raise ParseError(f"ticker_events: {requested_ticker}: expected results to be an object")
    events = results.get("events") or []
    if not isinstance(events, list):
        raise _fail("ticker_events", {"ticker": requested_ticker}, "events", events, "not a list")
    company = results.get("composite_figi") or results.get("cik") or requested_ticker
    rows = []
    for event in events:
        if not isinstance(event, Mapping):
            raise _fail("ticker_events", {"ticker": requested_ticker}, "events[]", event, "not an object")
        event_type = event.get("event_type") or event.get("type")
        if not event_type or not event.get("date"):
            raise _fail("ticker_events", {"ticker": requested_ticker}, "events[].date/type", event, "missing")
        rows.append(
            {
                **event,
                "id": stable_id(company, event_type, event.get("date"), _get(event, "ticker_change.ticker")),
                "ticker": requested_ticker,
                "name": results.get("name"),
                "composite_figi": results.get("composite_figi"),
                "cik": results.get("cik"),
                "event_type": event_type,
            }
        )
    return {"ticker_events": _table("ticker_events", TICKER_EVENT_COLUMNS, rows)}


# -- reference ----------------------------------------------------------------------------------------

TICKER_COLUMNS: list[Column] = [
    ("ticker", pa.string(), "ticker", to_str),
    ("name", pa.string(), "name", to_str),
    ("market", pa.string(), "market", to_str),
    ("locale", pa.string(), "locale", to_str),
    ("primary_exchange", pa.string(), "primary_exchange", to_str),
    ("type", pa.string(), "type", to_str),
    ("active", pa.bool_(), "active", to_bool),
    ("currency_name", pa.string(), "currency_name", to_str),
    ("cik", pa.string(), "cik", to_str),
    ("composite_figi", pa.string(), "composite_figi", to_str),
    ("share_class_figi", pa.string(), "share_class_figi", to_str),
    ("last_updated_utc", TS, "last_updated_utc", to_timestamp),
    ("delisted_utc", TS, "delisted_utc", to_timestamp),
    ("snapshot_date", pa.date32(), "snapshot_date", to_date),
]


def tickers(results: list[Mapping[str, Any]], snapshot_date: dt.date) -> dict[str, pa.Table]:
    _require("tickers", results, ("ticker",))
    rows = [{**r, "snapshot_date": snapshot_date} for r in results]
    return {"tickers": _table("tickers", TICKER_COLUMNS, rows)}


ADDITIONAL_UNDERLYING = pa.struct(
    [pa.field("type", pa.string()), pa.field("underlying", pa.string()), pa.field("amount", pa.float64())]
)


def _additional_underlyings(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("not a list")
    return [
        {
            "type": to_str(v.get("type")),
            "underlying": to_str(v.get("underlying")),
            "amount": to_float(v.get("amount")),
        }
        for v in value
    ]


OPTIONS_CONTRACT_COLUMNS: list[Column] = [
    ("ticker", pa.string(), "ticker", to_str),
    ("underlying_ticker", pa.string(), "underlying_ticker", to_str),
    ("contract_type", pa.string(), "contract_type", to_str),
    ("exercise_style", pa.string(), "exercise_style", to_str),
    ("expiration_date", pa.date32(), "expiration_date", to_date),
    ("strike_price", pa.float64(), "strike_price", to_float),
    ("shares_per_contract", pa.float64(), "shares_per_contract", to_float),
    ("primary_exchange", pa.string(), "primary_exchange", to_str),
    ("cfi", pa.string(), "cfi", to_str),
    ("correction", pa.int32(), "correction", to_int),
    (
        "additional_underlyings",
        pa.list_(ADDITIONAL_UNDERLYING),
        "additional_underlyings",
        _additional_underlyings,
    ),
]


def options_contracts(results: list[Mapping[str, Any]]) -> dict[str, pa.Table]:
    _require("options_contracts", results, ("ticker", "expiration_date"))
    return {"options_contracts": _table("options_contracts", OPTIONS_CONTRACT_COLUMNS, results)}


MARKET_HOLIDAY_COLUMNS: list[Column] = [
    ("exchange", pa.string(), "exchange", to_str),
    ("date", pa.date32(), "date", to_date),
    ("name", pa.string(), "name", to_str),
    ("status", pa.string(), "status", to_str),
    ("open_at", TS, "open", to_timestamp),
    ("close_at", TS, "close", to_timestamp),
]


def market_holidays(results: list[Mapping[str, Any]]) -> dict[str, pa.Table]:
    _require("market_holidays", results, ("exchange", "date", "status"))
    return {"market_holidays": _table("market_holidays", MARKET_HOLIDAY_COLUMNS, results)}
