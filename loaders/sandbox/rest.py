"""Polygon-compatible REST server over the synthetic market (Starlette, served by uvicorn).

It answers in Polygon's JSON shapes, with Polygon's auth (query `apiKey` or `Authorization: Bearer`) and
error bodies, cursor pagination through `next_url`, a rate limit answering 429, and fault knobs (errors,
latency, truncated bodies) drawn from the shared `Faults` RNG so a seeded run fails the same way twice.
Nothing after the sandbox clock (`market.today`) exists yet: later bars, news, filings and short data
appear only when the clock is advanced through `POST /_sandbox/advance`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import hashlib
import hmac
import json
import math
import threading
import weakref
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from loaders.sandbox import rest_aggs
from loaders.sandbox.rest_query import (
    PAGE_MARKER,
    Filter,
    ListEndpoint,
    QueryError,
    Record,
    SortKey,
    effective_params,
    encode_cursor,
    order_records,
    paginate,
    parse_value,
)

NEW_YORK = ZoneInfo("America/New_York")
SCOPE_KEY = "quantmini.api_key"

MISSING_KEY = "API Key was not provided"
UNKNOWN_KEY = "Unknown API Key"
RATE_LIMITED = (
    "You've exceeded the maximum requests per minute, please wait or upgrade your subscription to continue. "
    "https://polygon.io/pricing"
)
BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
GZIP_MIN_BYTES = 1024
REQUEST_LOG_SIZE = 10_000
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# field lists of the list endpoints' result items, from the OpenAPI spec (detail endpoints return more)
TICKER_LIST_FIELDS = (
    "ticker",
    "name",
    "market",
    "locale",
    "primary_exchange",
    "type",
    "active",
    "currency_name",
    "currency_symbol",
    "base_currency_name",
    "base_currency_symbol",
    "cik",
    "composite_figi",
    "share_class_figi",
    "last_updated_utc",
    "delisted_utc",
)


class NotFound(Exception):
    """The requested entity does not exist (404 with Polygon's NOT_FOUND body)."""


# --- list endpoints ------------------------------------------------------------------------------------


def _field(name: str) -> Callable[[Record], Any]:
    return lambda record: record.get(name)


def _ticker_filter(getter: Callable[[Record], Any] | None = None) -> Filter:
    return Filter("ticker", getter or _field("ticker"))


NEWS = ListEndpoint(
    name="news",
    default_limit=10,
    max_limit=1000,
    sorts={"published_utc": "published_utc"},
    default_sort="published_utc",
    default_order="desc",
    tiebreak=("id",),
    filters=(_ticker_filter(_field("tickers")), Filter("published_utc", _field("published_utc"), "datetime")),
    with_count=True,
)

FINANCIALS = ListEndpoint(
    name="financials",
    default_limit=10,
    max_limit=100,
    sorts={"filing_date": "filing_date", "period_of_report_date": "end_date"},
    default_sort="period_of_report_date",
    default_order="desc",
    tiebreak=("cik", "timeframe", "fiscal_year", "fiscal_period", "end_date", "filing_date"),
    filters=(
        _ticker_filter(lambda r: r.get("tickers") or r.get("ticker")),
        Filter("cik", _field("cik"), ranges=False),
        Filter("company_name", _field("company_name"), ranges=False),
        Filter("sic", _field("sic"), ranges=False),
        Filter("filing_date", _field("filing_date"), "date"),
        Filter("period_of_report_date", _field("end_date"), "date"),
        Filter("timeframe", _field("timeframe"), ranges=False),
    ),
    with_count=True,
)

SPLITS = ListEndpoint(
    name="splits",
    default_limit=10,
    max_limit=1000,
    sorts={"execution_date": "execution_date", "ticker": "ticker"},
    default_sort="execution_date",
    default_order="desc",
    tiebreak=("ticker", "id"),
    filters=(
        _ticker_filter(),
        Filter("execution_date", _field("execution_date"), "date"),
        Filter("reverse_split", lambda r: r["split_from"] > r["split_to"], "bool", ranges=False),
    ),
)

DIVIDENDS = ListEndpoint(
    name="dividends",
    default_limit=10,
    max_limit=1000,
    sorts={
        f: f
        for f in ("ex_dividend_date", "pay_date", "declaration_date", "record_date", "cash_amount", "ticker")
    },
    default_sort="ex_dividend_date",
    default_order="desc",
    tiebreak=("ticker", "id"),
    filters=(
        _ticker_filter(),
        Filter("ex_dividend_date", _field("ex_dividend_date"), "date"),
        Filter("record_date", _field("record_date"), "date"),
        Filter("declaration_date", _field("declaration_date"), "date"),
        Filter("pay_date", _field("pay_date"), "date"),
        Filter("cash_amount", _field("cash_amount"), "number"),
        Filter("frequency", _field("frequency"), "int", ranges=False),
        Filter("dividend_type", _field("dividend_type"), ranges=False),
    ),
)

TICKERS = ListEndpoint(
    name="tickers",
    default_limit=100,
    max_limit=1000,
    sorts={
        f: f
        for f in (
            "ticker",
            "name",
            "market",
            "locale",
            "primary_exchange",
            "type",
            "currency_symbol",
            "currency_name",
            "base_currency_symbol",
            "base_currency_name",
            "cik",
            "composite_figi",
            "share_class_figi",
            "last_updated_utc",
            "delisted_utc",
        )
    },
    default_sort="ticker",
    default_order="asc",
    tiebreak=("ticker", "active", "composite_figi", "delisted_utc"),
    filters=(
        _ticker_filter(),
        Filter("type", _field("type"), ranges=False),
        Filter("market", _field("market"), ranges=False),
        Filter("exchange", _field("primary_exchange"), ranges=False),
        Filter("cusip", _field("cusip"), ranges=False),
        Filter("cik", _field("cik"), ranges=False),
        Filter("active", _field("active"), "bool", ranges=False),
    ),
    with_count=True,
    fields=TICKER_LIST_FIELDS,
)

OPTIONS_CONTRACTS = ListEndpoint(
    name="options_contracts",
    default_limit=10,
    max_limit=1000,
    sorts={f: f for f in ("ticker", "underlying_ticker", "expiration_date", "strike_price")},
    default_sort="ticker",
    default_order="asc",
    tiebreak=("ticker",),
    filters=(
        _ticker_filter(),
        Filter("underlying_ticker", _field("underlying_ticker")),
        Filter("contract_type", _field("contract_type"), ranges=False),
        Filter("expiration_date", _field("expiration_date"), "date"),
        Filter("strike_price", _field("strike_price"), "number"),
    ),
)

SHORT_INTEREST = ListEndpoint(
    name="short_interest",
    default_limit=10,
    max_limit=50000,
    sorts={
        f: f for f in ("ticker", "settlement_date", "short_interest", "avg_daily_volume", "days_to_cover")
    },
    default_sort="ticker",
    default_order="asc",
    tiebreak=("ticker", "settlement_date"),
    filters=(
        _ticker_filter(),
        Filter("settlement_date", _field("settlement_date"), "date"),
        Filter("days_to_cover", _field("days_to_cover"), "number"),
        Filter("avg_daily_volume", _field("avg_daily_volume"), "number"),
    ),
    dotted_sort=True,
)

SHORT_VOLUME = ListEndpoint(
    name="short_volume",
    default_limit=10,
    max_limit=50000,
    sorts={f: f for f in ("ticker", "date", "short_volume", "total_volume", "short_volume_ratio")},
    default_sort="ticker",
    default_order="asc",
    tiebreak=("ticker", "date"),
    filters=(
        _ticker_filter(),
        Filter("date", _field("date"), "date"),
        Filter("short_volume_ratio", _field("short_volume_ratio"), "number"),
        Filter("total_volume", _field("total_volume"), "number"),
    ),
    dotted_sort=True,
)


def _on_or_before(value: Any, today: dt.date) -> bool:
    return value is not None and dt.date.fromisoformat(str(value)[:10]) <= today


def _as_of(params: Mapping[str, str], name: str, today: dt.date) -> dt.date:
    """A point-in-time parameter, clamped to the sandbox clock (the future is not known yet)."""
    if name not in params:
        return today
    return min(parse_value(name, params[name], "date"), today)


# The market already answers "as known on its clock": news up to today's evening, filings filed by today,
# splits announced (two weeks ahead) and dividends declared by today, short data settled by today.
def _news_source(market: Any, today: dt.date, params: dict[str, str]) -> list[Record]:
    return market.news()


def _financials_source(market: Any, today: dt.date, params: dict[str, str]) -> list[Record]:
    return market.financials()


def _splits_source(market: Any, today: dt.date, params: dict[str, str]) -> list[Record]:
    return market.splits()


def _dividends_source(market: Any, today: dt.date, params: dict[str, str]) -> list[Record]:
    return market.dividends()


def _tickers_source(market: Any, today: dt.date, params: dict[str, str]) -> list[Record]:
    params.setdefault("active", "true")  # Polygon lists active tickers unless asked otherwise
    records = market.tickers(_as_of(params, "date", today))
    search = params.get("search")
    if search:
        needle = search.lower()
        records = [
            r for r in records if needle in r.get("ticker", "").lower() or needle in r.get("name", "").lower()
        ]
    return records


def _options_source(market: Any, today: dt.date, params: dict[str, str]) -> list[Record]:
    as_of = _as_of(params, "as_of", today)
    expired = parse_value("expired", params["expired"], "bool") if "expired" in params else False
    if not expired:
        return [c for c in market.options_contracts(as_of) if c["expiration_date"] >= as_of.isoformat()]
    return _expired_contracts(market, as_of)


_EXPIRED: weakref.WeakKeyDictionary[Any, dict[dt.date, list[Record]]] = weakref.WeakKeyDictionary()
_EXPIRED_LOCK = threading.Lock()


def _expired_contracts(market: Any, as_of: dt.date) -> list[Record]:
    """Contracts that had expired by `as_of`: each is still listed on its own last trading day.

    Scanning every session costs about a second on the default market, so the answer is kept per day.
    """
    with _EXPIRED_LOCK:
        known = _EXPIRED.setdefault(market, {}).get(as_of)
    if known is not None:
        return known
    seen: dict[str, Record] = {}
    for day in market.sessions:
        if day >= as_of:
            break
        for contract in market.options_contracts(day):
            if contract["expiration_date"] == day.isoformat():
                seen[contract["ticker"]] = contract
    found = list(seen.values())
    with _EXPIRED_LOCK:
        _EXPIRED.setdefault(market, {})[as_of] = found
    return found


def _short_interest_source(market: Any, today: dt.date, params: dict[str, str]) -> list[Record]:
    return market.short_interest()


def _short_volume_source(market: Any, today: dt.date, params: dict[str, str]) -> list[Record]:
    return market.short_volume()


Source = Callable[[Any, dt.date, dict[str, str]], list[Record]]

LISTS: dict[str, tuple[ListEndpoint, Source]] = {
    "/v2/reference/news": (NEWS, _news_source),
    "/vX/reference/financials": (FINANCIALS, _financials_source),
    "/v3/reference/splits": (SPLITS, _splits_source),
    "/v3/reference/dividends": (DIVIDENDS, _dividends_source),
    "/v3/reference/tickers": (TICKERS, _tickers_source),
    "/v3/reference/options/contracts": (OPTIONS_CONTRACTS, _options_source),
    "/stocks/v1/short-interest": (SHORT_INTEREST, _short_interest_source),
    "/stocks/v1/short-volume": (SHORT_VOLUME, _short_volume_source),
}


# --- server state --------------------------------------------------------------------------------------


@dataclass
class Reply:
    """What a handler produced: status, a JSON-able body and extra headers."""

    status: int
    body: Any
    headers: dict[str, str] | None = None


class _Truncatable(Response):
    """A response that, when asked to, announces its full length but sends only part and hangs up."""

    def __init__(
        self, content: bytes, status_code: int, headers: dict[str, str], media_type: str, cut_at: int | None
    ):
        super().__init__(content=content, status_code=status_code, headers=headers, media_type=media_type)
        self.cut_at = cut_at

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cut_at is None:
            await super().__call__(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: self.cut_at], "more_body": True})
        # returning before the body is complete makes the server close the connection mid-body


class HideApiKey:
    """ASGI middleware: move `apiKey` out of the query string before anything can log or echo it.

    uvicorn's access log prints the path and query of the very scope the app receives, so the key is
    taken out of that scope in place and kept under SCOPE_KEY for the auth check.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and b"apikey=" in scope.get("query_string", b"").lower():
            pairs = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            keys = [v for k, v in pairs if k == "apiKey"]
            if keys:
                scope[SCOPE_KEY] = keys[0]
                kept = [(k, v) for k, v in pairs if k != "apiKey"]
                scope["query_string"] = urlencode(kept).encode("latin-1")
        await self.app(scope, receive, send)


class SandboxRest:
    """Handlers plus the state they share: market, faults, the accepted key, caches, answer counters."""

    def __init__(self, market: Any, faults: Any, api_key: str) -> None:
        self.market = market
        self.faults = faults
        self._api_key = api_key.encode()
        self._cache: OrderedDict[tuple[Any, ...], list[tuple[SortKey, Record]]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        #: (path, parameters) of every list request answered, newest last, the cursor of a next page
        #: decoded to what it asks for (GET /_sandbox/requests)
        self.requests: deque[tuple[str, dict[str, str]]] = deque(maxlen=REQUEST_LOG_SIZE)

    # -- helpers -------------------------------------------------------------------------------------

    def _request_id(self, request: Request, today: dt.date) -> str:
        # deterministic: the same request on the same sandbox day gets the same body, byte for byte
        query = sorted((k, v) for k, v in request.query_params.multi_items() if k != "apiKey")
        text = f"{request.method} {request.url.path} {query} {today.isoformat()}"
        return hashlib.md5(text.encode()).hexdigest()

    def _base_url(self, request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def _ordered(
        self, endpoint: ListEndpoint, source: Source, params: dict[str, str], today: dt.date
    ) -> list[tuple[SortKey, Record]]:
        """Rows of a list query, filtered and sorted once per (query, sandbox day) and then paged."""
        source_params = dict(params)
        records = source(self.market, today, source_params)  # may add defaults (tickers: active=true)
        params.update(source_params)
        key = (
            endpoint.name,
            today,
            tuple(sorted((k, v) for k, v in params.items() if k not in ("page_marker", "limit"))),
        )
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        ordered = order_records(endpoint, records, params)
        with self._cache_lock:
            self._cache[key] = ordered
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return ordered

    def clear_caches(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # -- the request pipeline ----------------------------------------------------------------------------

    def endpoint(
        self, handler: Callable[[Request, dt.date, str], Reply]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a synchronous handler with auth, rate limit, faults, threadpool offload and encoding."""

        async def run(request: Request) -> Response:
            today = self.market.today
            rid = self._request_id(request, today)
            key = request.scope.get(SCOPE_KEY)
            auth = request.headers.get("authorization", "")
            if not key and auth.lower().startswith("bearer "):
                key = auth[7:].strip()
            if not key:
                return await self._send(request, Reply(401, _error(rid, MISSING_KEY)))
            if not hmac.compare_digest(key.encode(), self._api_key):
                return await self._send(request, Reply(401, _error(rid, UNKNOWN_KEY)))
            wait = self.faults.take_token()
            if wait is not None:
                retry_after = str(max(1, math.ceil(wait)))
                return await self._send(
                    request, Reply(429, _error(rid, RATE_LIMITED), {"Retry-After": retry_after})
                )
            latency = self.faults.latency
            if latency > 0:
                await asyncio.sleep(latency)
            status = self.faults.draw_error()
            if status is not None:
                return await self._send(request, _fault_reply(status, rid))
            try:
                reply = await run_in_threadpool(handler, request, today, rid)
            except QueryError as exc:
                reply = Reply(400, _error(rid, str(exc)))
            except NotFound as exc:
                reply = Reply(404, {"status": "NOT_FOUND", "request_id": rid, "message": str(exc)})
            cut = self.faults.draw_truncation() if reply.status == 200 else None  # share of the body sent
            return await self._send(request, reply, cut)

        return run

    async def _send(self, request: Request, reply: Reply, cut: float | None = None) -> Response:
        accept_gzip = "gzip" in request.headers.get("accept-encoding", "")
        body, headers, media_type = await run_in_threadpool(_encode, reply, accept_gzip)
        cut_at = None if cut is None else min(len(body) - 1, int(len(body) * cut))
        self.stats[str(reply.status)] += 1
        if cut_at is not None:
            self.stats["truncated"] += 1
        return _Truncatable(body, reply.status, headers, media_type, cut_at)

    # -- data handlers (run in the threadpool) ---------------------------------------------------------

    def list_handler(self, path: str) -> Callable[[Request, dt.date, str], Reply]:
        endpoint, source = LISTS[path]

        def handle(request: Request, today: dt.date, rid: str) -> Reply:
            params = effective_params(dict(request.query_params))
            self.requests.append((path, {k: v for k, v in params.items() if k != PAGE_MARKER}))
            ordered = self._ordered(endpoint, source, params, today)
            page = paginate(endpoint, ordered, params)
            body: dict[str, Any] = {"results": page.results, "status": "OK", "request_id": rid}
            if endpoint.with_count:
                body["count"] = len(page.results)
            if page.next_params is not None:
                body["next_url"] = f"{self._base_url(request)}{path}?cursor={encode_cursor(page.next_params)}"
            return Reply(200, body)

        return handle

    def aggs_range(self, request: Request, today: dt.date, rid: str) -> Reply:
        query = dict(request.query_params)
        if "cursor" in query:
            params = effective_params(query)
        else:
            params = {k: v for k, v in query.items() if k not in ("apiKey", "anchor")}
        path = dict(request.path_params)
        path["from"] = path.pop("from_")
        req = rest_aggs.parse_range(path, params)
        body, next_page = rest_aggs.range_aggs(self.market, req, today)
        body = {**body, "status": "OK", "request_id": rid}
        if next_page is not None:
            body["next_url"] = (
                f"{self._base_url(request)}{next_page['path']}?cursor={encode_cursor(next_page['params'])}"
            )
        return Reply(200, body)

    def aggs_grouped(self, request: Request, today: dt.date, rid: str) -> Reply:
        raw = request.path_params["date"]
        day = parse_value("date", raw, "date")
        params = request.query_params
        adjusted = parse_value("adjusted", params["adjusted"], "bool") if "adjusted" in params else True
        body = rest_aggs.grouped_daily(self.market, day, adjusted, today)
        return Reply(200, {**body, "status": "OK", "request_id": rid})

    def ticker_details(self, request: Request, today: dt.date, rid: str) -> Reply:
        ticker = request.path_params["ticker"]
        as_of = _as_of(request.query_params, "date", today)
        found = [t for t in self.market.tickers(as_of) if t.get("ticker") == ticker]
        if not found:
            raise NotFound("Ticker not found.")
        # an active listing wins over delisted entities that once used the same symbol
        found.sort(key=lambda t: (bool(t.get("active")), str(t.get("delisted_utc") or "9999")), reverse=True)
        return Reply(200, {"results": found[0], "status": "OK", "request_id": rid})

    def ticker_events(self, request: Request, today: dt.date, rid: str) -> Reply:
        ident = request.path_params["id"]
        ticker = ident
        known = self.market.tickers(today)
        if not any(t.get("ticker") == ident for t in known):
            by_id = [t for t in known if ident in (t.get("cik"), t.get("composite_figi"))]
            if not by_id:
                raise NotFound("Ticker not found.")
            ticker = by_id[0]["ticker"]
        try:
            result = self.market.ticker_events(ticker)
        except (KeyError, ValueError, LookupError):
            raise NotFound("Ticker not found.") from None
        types = {t for t in request.query_params.get("types", "").split(",") if t}
        events = [
            e
            for e in result.get("events", [])
            if _on_or_before(e.get("date"), today) and (not types or e.get("type") in types)
        ]
        return Reply(200, {"results": {**result, "events": events}, "status": "OK", "request_id": rid})

    def option_contract(self, request: Request, today: dt.date, rid: str) -> Reply:
        ticker = request.path_params["options_ticker"]
        if not ticker.startswith("O:"):
            ticker = f"O:{ticker}"
        as_of = _as_of(request.query_params, "as_of", today)
        days = [as_of]
        expiry = _occ_expiry(ticker)
        if expiry is not None and expiry < as_of:
            # an expired contract is described as it was listed on its last trading day
            days.insert(0, max((d for d in self.market.sessions if d <= expiry), default=expiry))
        for day in days:
            for contract in self.market.options_contracts(day):
                if contract.get("ticker") == ticker:
                    return Reply(200, {"results": contract, "status": "OK", "request_id": rid})
        raise NotFound("Contract not found.")

    def holidays(self, request: Request, today: dt.date, rid: str) -> Reply:
        upcoming = [h for h in self.market.market_holidays() if str(h.get("date")) > today.isoformat()]
        upcoming.sort(key=lambda h: (str(h.get("date")), str(h.get("exchange"))))
        return Reply(200, upcoming)

    def market_now(self, request: Request, today: dt.date, rid: str) -> Reply:
        # the sandbox clock stands after the close of `today`, once the extended session is over
        server_time = dt.datetime(today.year, today.month, today.day, 20, 0, tzinfo=NEW_YORK)
        return Reply(
            200,
            {
                "market": "closed",
                "earlyHours": False,
                "afterHours": False,
                "serverTime": server_time.isoformat(),
                "exchanges": {"nyse": "closed", "nasdaq": "closed", "otc": "closed"},
                "currencies": {"fx": "open", "crypto": "open"},
            },
        )

    # -- admin (loopback only, no key) -----------------------------------------------------------------

    async def admin(self, request: Request) -> Response:
        host = request.client.host if request.client else ""
        if host not in LOOPBACK_HOSTS and not host.startswith("127."):
            return await self._send(
                request, Reply(403, {"status": "ERROR", "error": "admin endpoints answer loopback only"})
            )
        action = request.path_params["action"]
        try:
            if action == "advance" and request.method == "POST":
                days = parse_value("days", request.query_params.get("days", "1"), "int")
                if days < 0:
                    raise QueryError("invalid value for query parameter 'days': must be 0 or more")
                try:
                    today = await run_in_threadpool(self.market.advance, days)
                except ValueError as exc:
                    raise QueryError(str(exc)) from exc
                self.clear_caches()
                return await self._send(request, Reply(200, {"today": today.isoformat()}))
            if action == "faults" and request.method == "POST":
                try:
                    changes = json.loads(await request.body() or b"{}")
                except ValueError as exc:
                    raise QueryError(f"request body is not JSON: {exc}") from exc
                if not isinstance(changes, dict):
                    raise QueryError("request body must be a JSON object of fault fields")
                self._update_faults(changes)
                return await self._send(request, Reply(200, self.faults.as_dict()))
            if action == "state" and request.method == "GET":
                return await self._send(request, Reply(200, self._state()))
            if action == "requests" and request.method == "GET":
                wanted = request.query_params.get("path")
                log = [
                    {"path": path, "params": params}
                    for path, params in list(self.requests)
                    if wanted is None or path == wanted
                ]
                return await self._send(request, Reply(200, {"requests": log}))
        except QueryError as exc:
            return await self._send(request, Reply(400, {"status": "ERROR", "error": str(exc)}))
        return await self._send(
            request, Reply(404, {"status": "NOT_FOUND", "message": "unknown admin action"})
        )

    def _update_faults(self, changes: dict[str, Any]) -> None:
        try:
            self.faults.update(**changes)
        except ValueError as exc:
            raise QueryError(str(exc)) from exc

    def _state(self) -> dict[str, Any]:
        market = self.market
        config = market.config
        served = market.served_sessions()
        return {
            "today": market.today.isoformat(),
            "first_session": served[0].isoformat() if served else None,
            "sessions_served": len(served),
            "last_session": market.sessions[-1].isoformat() if market.sessions else None,
            "config": {k: _jsonable(v) for k, v in asdict(config).items()}
            if is_dataclass(config)
            else str(config),
            "faults": self.faults.as_dict(),
            "responses": dict(self.stats),
        }


def _occ_expiry(ticker: str) -> dt.date | None:
    """Expiration date inside an OCC symbol (`O:SPY251219C00650000` -> 2025-12-19), if it parses."""
    body = ticker[2:] if ticker.startswith("O:") else ticker
    if len(body) < 15:
        return None
    try:
        return dt.datetime.strptime(body[-15:-9], "%y%m%d").date()
    except ValueError:
        return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple | list):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, dict):
        return {str(_jsonable(k)): _jsonable(v) for k, v in value.items()}
    return value


def _error(rid: str, message: str) -> dict[str, str]:
    return {"status": "ERROR", "request_id": rid, "error": message}


def _fault_reply(status: int, rid: str) -> Reply:
    if status == 502:
        return Reply(502, BAD_GATEWAY_HTML)
    message = "Internal Server Error" if status == 500 else "Service Unavailable"
    return Reply(status, _error(rid, message))


def _encode(reply: Reply, accept_gzip: bool) -> tuple[bytes, dict[str, str], str]:
    if isinstance(reply.body, str):
        body, media_type = reply.body.encode(), "text/html"
    else:
        body = json.dumps(reply.body, separators=(",", ":"), allow_nan=False).encode()
        media_type = "application/json"
    headers = dict(reply.headers or {})
    if accept_gzip and len(body) >= GZIP_MIN_BYTES:
        body = gzip.compress(body, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return body, headers, media_type


def create_app(market: Any, faults: Any, api_key: str) -> Starlette:
    """The sandbox REST application; `market` and `faults` are shared with the S3 side and mutable."""
    rest = SandboxRest(market, faults, api_key)
    ep = rest.endpoint
    routes = [Route(path, ep(rest.list_handler(path)), methods=["GET"]) for path in LISTS]
    routes += [
        Route(
            "/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{from_}/{to}",
            ep(rest.aggs_range),
            methods=["GET"],
        ),
        Route("/v2/aggs/grouped/locale/us/market/stocks/{date}", ep(rest.aggs_grouped), methods=["GET"]),
        Route("/v3/reference/tickers/{ticker}", ep(rest.ticker_details), methods=["GET"]),
        Route("/vX/reference/tickers/{id}/events", ep(rest.ticker_events), methods=["GET"]),
        Route("/v3/reference/options/contracts/{options_ticker}", ep(rest.option_contract), methods=["GET"]),
        Route("/v1/marketstatus/upcoming", ep(rest.holidays), methods=["GET"]),
        Route("/v1/marketstatus/now", ep(rest.market_now), methods=["GET"]),
        Route("/_sandbox/{action}", rest.admin, methods=["GET", "POST"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        body = {
            "status": "NOT_FOUND",
            "request_id": rest._request_id(request, market.today),
            "message": "Not found.",
        }
        return await rest._send(request, Reply(404, body))

    app = Starlette(routes=routes, exception_handlers={404: not_found}, middleware=[Middleware(HideApiKey)])
    app.state.sandbox_rest = rest
    return app
