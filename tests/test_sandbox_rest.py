"""The sandbox REST server speaks Polygon: shapes (OpenAPI schema + recorded responses), paging, filters,
auth, rate limit, fault knobs and the sandbox clock."""

from __future__ import annotations

import datetime as dt
import json
import time
import typing
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from openapi_schema_validator import OAS30Validator
from reference_files import OPENAPI_SPEC, REST_MOCKS

SPEC_FILE = OPENAPI_SPEC
MOCKS = REST_MOCKS


# --- helpers -------------------------------------------------------------------------------------------


def api_key(sandbox: Any) -> str:
    return sandbox.env()["POLYGON_API_KEY"]


@pytest.fixture
def client(sandbox: Any) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.rest_url, headers={"Authorization": f"Bearer {api_key(sandbox)}"}, timeout=30
    ) as c:
        yield c


def get_json(client: httpx.Client, path: str, **params: Any) -> Any:
    # httpx replaces a URL's own query when `params` is given, even empty: pass it only when needed
    response = client.get(path, params=params) if params else client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def walk(client: httpx.Client, path: str, **params: Any) -> tuple[list[dict], list[dict]]:
    """Follow next_url to the end: (all results, every page body)."""
    pages = [get_json(client, path, **params)]
    while "next_url" in pages[-1]:
        assert len(pages) < 500, "pagination does not end"
        pages.append(get_json(client, pages[-1]["next_url"]))
    return [row for page in pages for row in page.get("results", [])], pages


def session_after(sandbox: Any, day: dt.date) -> dt.date:
    return next(d for d in sandbox.market.sessions if d > day)


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads(SPEC_FILE.read_text())


def inline_refs(node: Any, spec: dict) -> Any:
    """Replace `$ref`s with their targets so the schema validates standalone."""
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return inline_refs(target, spec)
        return {k: inline_refs(v, spec) for k, v in node.items()}
    if isinstance(node, list):
        return [inline_refs(v, spec) for v in node]
    return node


def response_schema(spec: dict, path: str) -> dict:
    schema = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    return inline_refs(schema, spec)


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def compare_shapes(ours: Any, recorded: Any, where: str) -> list[str]:
    """Differences in field types between our body and Polygon's recorded one, at every common key."""
    problems = []
    if json_type(ours) != json_type(recorded):
        return [f"{where}: {json_type(ours)} here, {json_type(recorded)} in the recording"]
    if isinstance(ours, dict):
        for key in ours.keys() & recorded.keys():
            problems += compare_shapes(ours[key], recorded[key], f"{where}.{key}")
    elif isinstance(ours, list) and ours and recorded:
        problems += compare_shapes(ours[0], recorded[0], f"{where}[]")
    return problems


def missing_keys(ours: Any, recorded: Any, where: str, optional: set[str]) -> list[str]:
    """Keys Polygon's recording has that our body lacks (recursively), minus documented optional ones."""
    out = []
    if isinstance(ours, dict) and isinstance(recorded, dict):
        for key in recorded.keys() - ours.keys():
            name = f"{where}.{key}"
            if name not in optional and not any(
                o.endswith(".*") and name.startswith(o[:-1]) for o in optional
            ):
                out.append(name)
        for key in ours.keys() & recorded.keys():
            out += missing_keys(ours[key], recorded[key], f"{where}.{key}", optional)
    elif isinstance(ours, list) and isinstance(recorded, list) and ours and recorded:
        out += missing_keys(ours[0], recorded[0], f"{where}[]", optional)
    return out


STATEMENTS = ("balance_sheet", "cash_flow_statement", "comprehensive_income", "income_statement")


# One request per endpoint: (spec path, our path, params, recorded response file, recorded keys we may lack).
def endpoint_cases(sandbox: Any) -> list[tuple[str, str, dict, str, set[str]]]:
    market = sandbox.market
    today = market.today
    option = market.options_contracts(today)[0]["ticker"]
    first = market.served_sessions()[-3]
    return [
        (
            "/v2/aggs/ticker/{stocksTicker}/range/{multiplier}/{timespan}/{from}/{to}",
            f"/v2/aggs/ticker/SPY/range/1/day/{first}/{today}",
            {},
            "v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json",
            set(),
        ),
        (
            "/v2/aggs/ticker/{stocksTicker}/range/{multiplier}/{timespan}/{from}/{to}",
            f"/v2/aggs/ticker/SPY/range/5/minute/{today}/{today}",
            {"limit": 50},
            "v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json",
            set(),
        ),
        (
            "/v2/aggs/ticker/{optionsTicker}/range/{multiplier}/{timespan}/{from}/{to}",
            f"/v2/aggs/ticker/{option}/range/1/day/{first}/{today}",
            {},
            "v2/aggs/ticker/AAPL/range/1/day/2005-04-01/2005-04-04.json",
            {"$.results"},  # a far strike may not have traded in these sessions
        ),
        (
            "/v2/aggs/grouped/locale/us/market/stocks/{date}",
            f"/v2/aggs/grouped/locale/us/market/stocks/{today}",
            {},
            "v2/aggs/grouped/locale/us/market/stocks/2005-04-04&adjusted=true.json",
            set(),
        ),
        (
            "/v2/reference/news",
            "/v2/reference/news",
            {"limit": 5},
            "v2/reference/news&ticker=NFLX.json",
            set(),
        ),
        (
            "/vX/reference/financials",
            "/vX/reference/financials",
            {"limit": 3},
            "vX/reference/financials.json",
            # which line items a statement carries varies by company in Polygon's data too
            {f"$.results[].financials.{s}.*" for s in STATEMENTS},
        ),
        ("/v3/reference/splits", "/v3/reference/splits", {}, "v3/reference/splits.json", set()),
        ("/v3/reference/dividends", "/v3/reference/dividends", {}, "v3/reference/dividends.json", set()),
        ("/v3/reference/tickers", "/v3/reference/tickers", {"limit": 5}, "v3/reference/tickers.json", set()),
        (
            "/v3/reference/tickers/{ticker}",
            "/v3/reference/tickers/BRK.B",
            {},
            "v3/reference/tickers/AAPL.json",
            # company profile fields the synthetic market does not invent
            {
                f"$.results.{k}"
                for k in (
                    "market_cap",
                    "phone_number",
                    "address",
                    "description",
                    "sic_code",
                    "sic_description",
                    "ticker_root",
                    "homepage_url",
                    "total_employees",
                    "branding",
                    "share_class_shares_outstanding",
                    "weighted_shares_outstanding",
                )
            },
        ),
        (
            "/vX/reference/tickers/{id}/events",
            "/vX/reference/tickers/NEWC/events",
            {"types": "ticker_change"},
            "vX/reference/tickers/META/events&types=ticker_change.json",
            set(),
        ),
        (
            "/v3/reference/options/contracts",
            "/v3/reference/options/contracts",
            {"limit": 5},
            "v3/reference/options/contracts.json",
            set(),
        ),
        (
            "/v3/reference/options/contracts/{options_ticker}",
            f"/v3/reference/options/contracts/{option}",
            {},
            "v3/reference/options/contracts/OEVRI240119C00002500.json",
            set(),
        ),
        (
            "/v1/marketstatus/upcoming",
            "/v1/marketstatus/upcoming",
            {},
            "v1/marketstatus/upcoming.json",
            set(),
        ),
        ("/v1/marketstatus/now", "/v1/marketstatus/now", {}, "v1/marketstatus/now.json", set()),
    ]


# --- shapes --------------------------------------------------------------------------------------------


def test_every_endpoint_validates_against_the_openapi_schema(
    sandbox: Any, client: httpx.Client, spec: dict
) -> None:
    for spec_path, path, params, _, _ in endpoint_cases(sandbox):
        body = get_json(client, path, **params)
        schema = response_schema(spec, spec_path)
        if spec_path == "/vX/reference/tickers/{id}/events":
            # the spec names the field `event_type`; the service (and its recorded response) sends `type`
            item = schema["properties"]["results"]["properties"]["events"]["items"]["oneOf"][0]
            item["required"] = ["type", "date"]
        errors = sorted(OAS30Validator(schema).iter_errors(body), key=str)
        assert not errors, f"{path}: {[e.message for e in errors[:5]]}"
        if isinstance(body, dict) and spec_path not in ("/v1/marketstatus/now",):
            assert body["status"] == "OK" and len(body["request_id"]) == 32, path


def test_fields_and_types_match_polygons_recorded_responses(sandbox: Any, client: httpx.Client) -> None:
    for _, path, params, mock, optional in endpoint_cases(sandbox):
        recorded = json.loads((MOCKS / mock).read_text())
        body = get_json(client, path, **params)
        assert not compare_shapes(body, recorded, "$"), (path, compare_shapes(body, recorded, "$"))
        optional = optional | {"$.next_url", "$.count"}  # depend on the page, not the shape
        assert not missing_keys(body, recorded, "$", optional), (
            path,
            missing_keys(body, recorded, "$", optional),
        )


def test_short_data_fields_are_the_official_clients(client: httpx.Client) -> None:
    """No spec or recording covers the v1 short endpoints; the official client's models are the contract."""
    from massive.rest.models import ShortInterest, ShortVolume

    for path, model in (
        ("/stocks/v1/short-interest", ShortInterest),
        ("/stocks/v1/short-volume", ShortVolume),
    ):
        body = get_json(client, path, limit=3)
        assert body["status"] == "OK" and len(body["results"]) == 3
        hints = typing.get_type_hints(model)
        for row in body["results"]:
            assert set(row) == set(hints), (path, set(row) ^ set(hints))
            for key, value in row.items():
                expected = typing.get_args(hints[key])[0]  # Optional[X] -> X
                assert isinstance(value, expected) or (expected is float and isinstance(value, int)), (
                    key,
                    value,
                )


# --- pagination ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params", "key"),
    [
        ("/v3/reference/tickers", {}, ("ticker", "composite_figi")),
        ("/v2/reference/news", {}, ("id",)),
        ("/v3/reference/options/contracts", {}, ("ticker",)),
        ("/stocks/v1/short-volume", {"date.gte": "2024-02-01"}, ("ticker", "date")),
        ("/v3/reference/dividends", {"order": "asc"}, ("id",)),
        ("/vX/reference/financials", {"sort": "filing_date"}, ("cik", "end_date", "timeframe")),
    ],
)
def test_pages_cover_every_row_once_in_a_stable_order(
    sandbox: Any, client: httpx.Client, path: str, params: dict, key: tuple[str, ...]
) -> None:
    full = get_json(client, path, **params, limit=100 if "financials" in path else 1000)
    assert "next_url" not in full, "the reference listing should fit one page"
    total = len(full["results"])
    assert total >= 3, f"{path}: too few rows to page through"
    limit = max(1, total // 3 - 1)  # several pages, the last one partial
    rows, pages = walk(client, path, **params, limit=limit)
    assert len(pages) > 1 and "next_url" not in pages[-1]
    ids = [tuple(r.get(k) for k in key) for r in rows]
    assert len(ids) == len(set(ids)), "a row was served twice"
    assert ids == [tuple(r.get(k) for k in key) for r in full["results"]], "pages differ from one big page"
    for page in pages[:-1]:
        url = urlsplit(page["next_url"])
        assert f"{url.scheme}://{url.netloc}" == sandbox.rest_url
        assert set(parse_qs(url.query)) == {"cursor"}, "next_url carries only the cursor (no apiKey)"
        assert api_key(sandbox) not in page["next_url"]
        assert len(page["results"]) == limit


def test_aggregate_pages_resume_where_the_limit_cut(sandbox: Any, client: httpx.Client) -> None:
    served = sandbox.market.served_sessions()
    first, last = served[-3], served[-1]
    path = f"/v2/aggs/ticker/SPY/range/1/minute/{first}/{last}"
    whole = get_json(client, path, limit=50000)
    rows, pages = walk(client, path, limit=500)
    assert len(pages) >= 3 and whole["resultsCount"] == len(whole["results"]) == len(rows)
    assert [r["t"] for r in rows] == [r["t"] for r in whole["results"]]
    assert all(p["queryCount"] <= 500 for p in pages)
    backwards, _ = walk(client, path, limit=700, sort="desc")
    assert [r["t"] for r in backwards] == [r["t"] for r in reversed(whole["results"])]


def test_bad_query_values_get_a_400_naming_the_parameter(client: httpx.Client) -> None:
    cases = [
        ("/v2/reference/news", {"published_utc.gte": "yesterday"}, "published_utc.gte"),
        ("/v3/reference/tickers", {"limit": "many"}, "limit"),
        ("/v3/reference/splits", {"sort": "colour"}, "sort"),
        ("/v3/reference/dividends", {"cursor": "!!not-a-cursor!!"}, "cursor"),
        ("/v2/aggs/ticker/SPY/range/1/day/2024-13-01/2024-02-01", {}, "from"),
        ("/v2/aggs/ticker/SPY/range/1/fortnight/2024-01-01/2024-02-01", {}, "timespan"),
    ]
    for path, params, name in cases:
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, response.text)
        body = response.json()
        assert body["status"] == "ERROR" and name in body["error"], body


def test_unknown_entities_are_404_with_polygons_body(client: httpx.Client) -> None:
    for path in (
        "/v3/reference/tickers/NOPE",
        "/vX/reference/tickers/NOPE/events",
        "/v3/reference/options/contracts/O:NOPE250101C00001000",
    ):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["status"] == "NOT_FOUND"


# --- filters -------------------------------------------------------------------------------------------


def test_news_filters_by_ticker_and_publication_time(sandbox: Any, client: httpx.Client) -> None:
    served = sandbox.market.served_sessions()
    lo, hi = served[-15].isoformat(), served[-5].isoformat()
    window = [a for a in sandbox.market.news() if lo <= a["published_utc"] < hi]
    ticker = Counter(t for a in window for t in a["tickers"]).most_common(1)[0][0]
    rows, _ = walk(
        client,
        "/v2/reference/news",
        ticker=ticker,
        **{"published_utc.gte": lo, "published_utc.lt": hi},
        limit=1000,
    )
    expected = [a for a in sandbox.market.news() if ticker in a["tickers"] and lo <= a["published_utc"] < hi]
    assert rows and sorted(r["id"] for r in rows) == sorted(a["id"] for a in expected)
    published = [r["published_utc"] for r in rows]
    assert published == sorted(published, reverse=True), "news defaults to newest first"
    asc = get_json(client, "/v2/reference/news", order="asc", limit=50)["results"]
    assert [r["published_utc"] for r in asc] == sorted(r["published_utc"] for r in asc)


def test_reference_filters(sandbox: Any, client: httpx.Client) -> None:
    market = sandbox.market
    served = market.served_sessions()
    mid = served[len(served) // 2].isoformat()

    filings = walk(client, "/vX/reference/financials", **{"filing_date.gte": mid}, limit=100)[0]
    assert filings and all(f["filing_date"] >= mid for f in filings)
    assert len(filings) == sum(f["filing_date"] >= mid for f in market.financials())

    splits = get_json(client, "/v3/reference/splits", **{"execution_date.lte": mid})["results"]
    assert all(s["execution_date"] <= mid for s in splits)
    assert get_json(client, "/v3/reference/splits", ticker="XYZ")["results"][0]["ticker"] == "XYZ"

    divs = walk(client, "/v3/reference/dividends", **{"ex_dividend_date.gte": mid}, limit=1000)[0]
    assert len(divs) == sum(d["ex_dividend_date"] >= mid for d in market.dividends())

    sv = walk(
        client, "/stocks/v1/short-volume", ticker="SPY", **{"date.gte": served[-5].isoformat()}, limit=50000
    )[0]
    lo = served[-5].isoformat()
    expected_days = sorted(
        r["date"] for r in market.short_volume() if r["ticker"] == "SPY" and r["date"] >= lo
    )
    assert expected_days and [r["date"] for r in sv] == expected_days

    si = get_json(client, "/stocks/v1/short-interest", ticker="SPY", sort="settlement_date.desc", limit=100)[
        "results"
    ]
    dates = [r["settlement_date"] for r in si]
    assert dates and dates == sorted(dates, reverse=True) and {r["ticker"] for r in si} == {"SPY"}

    tickers = get_json(client, "/v3/reference/tickers", **{"ticker.gte": "B", "ticker.lt": "D"}, limit=1000)[
        "results"
    ]
    assert tickers and all("B" <= t["ticker"] < "D" for t in tickers)
    assert "BRK.B" in {t["ticker"] for t in tickers} and "CON" in {t["ticker"] for t in tickers}
    etfs = get_json(client, "/v3/reference/tickers", type="ETF")["results"]
    assert "SPY" in {t["ticker"] for t in etfs} and {t["type"] for t in etfs} == {"ETF"}
    case = get_json(client, "/v3/reference/tickers", ticker="ABCpA")["results"]
    assert [t["ticker"] for t in case] == ["ABCpA"], "tickers are case-sensitive"

    exp_hi = (market.today + dt.timedelta(days=30)).isoformat()
    chain = walk(
        client,
        "/v3/reference/options/contracts",
        underlying_ticker="SPY",
        **{"expiration_date.lte": exp_hi},
        limit=1000,
    )[0]
    assert chain and all(c["underlying_ticker"] == "SPY" and c["expiration_date"] <= exp_hi for c in chain)
    gone = walk(client, "/v3/reference/options/contracts", expired="true", limit=1000)[0]
    assert gone and all(c["expiration_date"] < market.today.isoformat() for c in gone)


# --- aggregates ----------------------------------------------------------------------------------------


def test_adjusted_bars_apply_splits_and_raw_bars_match_the_flat_files(
    sandbox: Any, client: httpx.Client
) -> None:
    market = sandbox.market
    today = market.today
    split = next(
        s for s in market.splits() if s["ticker"] == "XYZ" and s["execution_date"] <= today.isoformat()
    )
    executed = dt.date.fromisoformat(split["execution_date"])
    before = max(d for d in market.sessions if d < executed)
    path = f"/v2/aggs/ticker/XYZ/range/1/day/{before}/{before}"
    raw = get_json(client, path, adjusted="false")["results"][0]
    adjusted = get_json(client, path)["results"][0]
    flat = market.stock_day_aggs(before).to_pylist()
    row = next(r for r in flat if r["ticker"] == "XYZ")
    assert (raw["o"], raw["c"], raw["v"], raw["n"]) == (
        row["open"],
        row["close"],
        row["volume"],
        row["transactions"],
    )
    assert raw["t"] == row["window_start"] // 1_000_000
    ratio = split["split_from"] / split["split_to"]
    assert adjusted["c"] == pytest.approx(row["close"] * ratio, abs=1e-4)
    assert adjusted["v"] == pytest.approx(row["volume"] / ratio, rel=1e-9)
    after = get_json(client, f"/v2/aggs/ticker/XYZ/range/1/day/{executed}/{executed}")["results"][0]
    assert (
        after["c"]
        == next(r for r in market.stock_day_aggs(executed).to_pylist() if r["ticker"] == "XYZ")["close"]
    )


def test_grouped_daily_is_the_flat_file_day(sandbox: Any, client: httpx.Client) -> None:
    day = sandbox.market.served_sessions()[-2]
    body = get_json(client, f"/v2/aggs/grouped/locale/us/market/stocks/{day}", adjusted="false")
    flat = {r["ticker"]: r for r in sandbox.market.stock_day_aggs(day).to_pylist()}
    assert {r["T"] for r in body["results"]} == set(flat) and body["resultsCount"] == len(flat)
    for r in body["results"]:
        f = flat[r["T"]]
        assert (r["o"], r["h"], r["l"], r["c"], r["v"]) == (
            f["open"],
            f["high"],
            f["low"],
            f["close"],
            f["volume"],
        )
    holiday = next(d for d in (day - dt.timedelta(days=i) for i in range(1, 10)) if d.weekday() >= 5)
    empty = get_json(client, f"/v2/aggs/grouped/locale/us/market/stocks/{holiday}")
    assert empty["resultsCount"] == 0 and "results" not in empty


def test_multi_day_bars_aggregate_their_days(sandbox: Any, client: httpx.Client) -> None:
    served = sandbox.market.served_sessions()
    lo, hi = served[-20], served[-1]
    days = get_json(client, f"/v2/aggs/ticker/SPY/range/1/day/{lo}/{hi}")["results"]
    weeks = get_json(client, f"/v2/aggs/ticker/SPY/range/1/week/{lo}/{hi}")["results"]
    assert sum(w["v"] for w in weeks) == pytest.approx(sum(d["v"] for d in days))
    assert max(w["h"] for w in weeks) == max(d["h"] for d in days)
    assert weeks[0]["o"] == days[0]["o"] and weeks[-1]["c"] == days[-1]["c"]


# --- auth, rate limit, faults --------------------------------------------------------------------------


def test_auth_accepts_query_or_bearer_and_answers_polygons_401s(sandbox: Any) -> None:
    url = f"{sandbox.rest_url}/v3/reference/tickers"
    key = api_key(sandbox)
    assert httpx.get(url, params={"apiKey": key}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json() == {
        "status": "ERROR",
        "request_id": missing.json()["request_id"],
        "error": "API Key was not provided",
    }
    wrong = httpx.get(url, params={"apiKey": "not-the-key"})
    assert (
        wrong.status_code == 401
        and wrong.json()["error"] == "Unknown API Key"
        and wrong.json()["status"] == "ERROR"
    )
    assert "not-the-key" not in wrong.text


def test_rate_limit_answers_429_with_retry_after(client: httpx.Client, faults: Any) -> None:
    faults.rate_limit = 2.0
    statuses = [client.get("/v1/marketstatus/now") for _ in range(8)]
    limited = [r for r in statuses if r.status_code == 429]
    assert limited and statuses[0].status_code == 200
    assert int(limited[0].headers["Retry-After"]) >= 1
    body = limited[0].json()
    assert body["status"] == "ERROR" and body["error"].startswith(
        "You've exceeded the maximum requests per minute"
    )
    time.sleep(1.1)
    assert client.get("/v1/marketstatus/now").status_code == 200


def test_error_rate_gives_reproducible_5xx(client: httpx.Client, faults: Any) -> None:
    faults.error_rate = 1.0
    always = [client.get("/v3/reference/splits") for _ in range(12)]
    assert {r.status_code for r in always} <= {500, 502, 503} and len({r.status_code for r in always}) > 1
    html = next((r for r in always if r.status_code == 502), None)
    assert html is None or "text/html" in html.headers["content-type"]
    faults.error_rate = 0.4
    runs = []
    for _ in range(2):
        faults.rng.seed(1234)
        runs.append([client.get("/v3/reference/splits").status_code for _ in range(15)])
    assert runs[0] == runs[1], "the same RNG seed gives the same failures"
    assert 200 in runs[0] and set(runs[0]) - {200}


def test_latency_delays_every_answer_without_serialising_them(sandbox: Any, faults: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Four requests with 1 s of latency each: served one after another they take at least 4 s, served
    # side by side about 1 s. The bound sits between the two with room for a loaded machine.
    faults.latency = 1.0
    url = f"{sandbox.rest_url}/v1/marketstatus/now"
    key = api_key(sandbox)

    def timed_get(_: int) -> tuple[int, float]:
        start = time.perf_counter()
        status = httpx.get(url, params={"apiKey": key}).status_code
        return status, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(timed_get, range(4)))
    assert all(status == 200 and took >= 1.0 for status, took in answers)
    assert time.perf_counter() - start < 3.0, "delayed requests must not wait for each other"


def test_truncate_rate_cuts_bodies_short(sandbox: Any, faults: Any) -> None:
    faults.truncate_rate = 1.0
    key = api_key(sandbox)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        httpx.get(f"{sandbox.rest_url}/v3/reference/tickers", params={"apiKey": key, "limit": 50})
    faults.truncate_rate = 0.0
    assert httpx.get(f"{sandbox.rest_url}/v3/reference/tickers", params={"apiKey": key}).status_code == 200


def test_admin_endpoints_change_faults_and_report_state(sandbox: Any, faults: Any) -> None:
    url = sandbox.rest_url
    answer = httpx.post(f"{url}/_sandbox/faults", json={"latency": 0.05, "error_rate": 0.0})
    assert answer.status_code == 200 and answer.json()["latency"] == 0.05 and sandbox.faults.latency == 0.05
    bad = httpx.post(f"{url}/_sandbox/faults", json={"colour": 1})
    assert bad.status_code == 400 and "colour" in bad.json()["error"]
    state = httpx.get(f"{url}/_sandbox/state").json()
    assert state["today"] == sandbox.market.today.isoformat() and state["faults"]["latency"] == 0.05


# --- the sandbox clock ---------------------------------------------------------------------------------


def test_advancing_the_clock_makes_the_next_session_appear(sandbox_config: Any) -> None:
    """On a private sandbox, so moving its clock cannot surprise tests sharing the worker's sandbox."""
    from loaders.sandbox.server import SandboxServer

    with SandboxServer(sandbox_config) as private:
        market = private.market
        today = market.today
        assert today < market.sessions[-1], "the test market must leave sessions to advance into"
        tomorrow = session_after(private, today)
        with httpx.Client(
            base_url=private.rest_url, params={"apiKey": api_key(private)}, timeout=30
        ) as client:
            grouped = f"/v2/aggs/grouped/locale/us/market/stocks/{tomorrow}"
            bars = f"/v2/aggs/ticker/SPY/range/1/day/{today}/{tomorrow}"
            news_query = {"published_utc.gte": today.isoformat(), "limit": 1000}
            assert client.get(grouped).json()["resultsCount"] == 0
            assert client.get(bars).json()["resultsCount"] == 1
            news_before = client.get("/v2/reference/news", params=news_query).json()["results"]
            moved = httpx.post(f"{private.rest_url}/_sandbox/advance", params={"days": 1})
            assert moved.status_code == 200 and moved.json() == {"today": tomorrow.isoformat()}
            assert client.get(grouped).json()["resultsCount"] > 0
            assert client.get(bars).json()["resultsCount"] == 2
            news_after = client.get("/v2/reference/news", params=news_query).json()["results"]
            assert len(news_after) > len(news_before)


def test_api_key_never_reaches_the_access_log(sandbox: Any) -> None:
    """uvicorn logs every request line; a key sent as `?apiKey=` must not be in it."""
    import logging
    import socket
    import threading

    import uvicorn

    from loaders.sandbox.faults import Faults
    from loaders.sandbox.rest import create_app

    secret = "key-that-must-not-be-logged"
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    handler = Collect()
    access.addHandler(handler)
    previous_level = access.level
    access.setLevel(logging.INFO)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(sandbox.market, Faults(), secret), host="127.0.0.1", port=port, log_config=None
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        response = httpx.get(
            f"http://127.0.0.1:{port}/v3/reference/tickers", params={"apiKey": secret, "limit": 2}
        )
        assert response.status_code == 200 and secret not in response.text
        assert secret not in response.json()["next_url"]
    finally:
        server.should_exit = True
        thread.join(10)
        access.removeHandler(handler)
        access.setLevel(previous_level)
    assert any("/v3/reference/tickers" in line for line in lines), lines
    assert not any(secret in line for line in lines), lines
