"""The REST client's pacing, Retry-After handling, retries and key hygiene, without a server."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest

from loaders import pacing
from loaders.landing import PageStore
from loaders.pacing import RateLimiter
from loaders.rest.client import PolygonClient, RestError
from loaders.rest.commands import UsageError, read_tickers_file

KEY = "s3cr3t-key-value"


class FakeClock:
    """Monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_five_requests_per_minute_are_spaced_twelve_seconds_apart() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5 / 60, clock=clock, sleep=clock.sleep)
    starts = [limiter.acquire() for _ in range(6)]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert all(12.0 <= gap <= 12.0 * 1.05 for gap in gaps)
    # No window of 60 s holds more than 5 request starts.
    assert all(sum(1 for t in starts if s <= t < s + 60) <= 5 for s in starts)


def test_retry_after_pauses_every_later_request() -> None:
    clock = FakeClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    first = limiter.acquire()
    assert limiter.acquire() == first  # unlimited: no spacing
    limiter.pause(7.0)
    assert limiter.acquire() - first == pytest.approx(7.0)
    assert pacing.parse_retry_after("3") == 3.0
    now = dt.datetime(2025, 1, 2, 12, 0, tzinfo=dt.UTC)
    assert pacing.parse_retry_after("Thu, 02 Jan 2025 12:00:05 GMT", now=now) == pytest.approx(5.0)
    assert pacing.parse_retry_after(None) == 1.0
    with pytest.raises(ValueError, match="--rate-limit"):
        RateLimiter(0)


def _client(handler, **kwargs) -> PolygonClient:
    clock = FakeClock()
    return PolygonClient(
        "https://api.example.test",
        KEY,
        limiter=RateLimiter(None, clock=clock, sleep=clock.sleep),
        transport=httpx.MockTransport(handler),
        backoff_sleep=lambda _: None,
        **kwargs,
    )


def test_429_then_5xx_then_truncated_body_are_survived_with_bearer_auth() -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "2"}, json={"status": "ERROR"}),
            httpx.Response(503, text="busy"),
            httpx.Response(200, content=b'{"results": [{"id"'),
            httpx.Response(200, json={"results": [{"id": "a"}], "status": "OK"}),
        ]
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    client = _client(handler)
    response = client.get("/v3/reference/splits", {"limit": 10})
    assert response.data["results"] == [{"id": "a"}]
    assert client.requests == 4 and client.rate_limited == 1 and client.retries == 3
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in seen)
    assert all(KEY not in str(r.url) for r in seen)
    starts = client.limiter.granted
    assert starts[1] - starts[0] == pytest.approx(2.0)  # Retry-After honoured


def test_persistent_5xx_gives_up_with_a_clear_error() -> None:
    client = _client(lambda request: httpx.Response(500, text="oops"), max_attempts=3)
    with pytest.raises(RestError, match=r"failed after retries: HTTP 500"):
        client.get("/v2/reference/news")
    assert client.requests == 3


def test_auth_errors_fail_fast_without_the_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"status": "ERROR", "error": f"Unknown API Key {KEY}"})

    client = _client(handler)
    with pytest.raises(RestError) as info:
        client.get(f"/v2/reference/news?apiKey={KEY}")
    assert info.value.status == 401
    assert KEY not in str(info.value)
    assert client.requests == 1


def test_next_url_is_followed_on_our_own_host_without_foreign_api_keys() -> None:
    client = _client(lambda request: httpx.Response(200, json={}))
    relative = client.relative(f"https://api.massive.com/v3/reference/tickers?cursor=abc&apiKey={KEY}")
    assert relative == "/v3/reference/tickers?cursor=abc"


def test_landing_pages_resume_an_interrupted_listing(tmp_path: Path) -> None:
    pages = {
        None: {"results": [1], "next_url": "https://api.example.test/x?cursor=p2"},
        "p2": {"results": [2], "next_url": "https://api.example.test/x?cursor=p3"},
        "p3": {"results": [3], "next_url": "https://api.example.test/x?"},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    client = _client(handler)
    landing = PageStore(tmp_path, "demo", "/x", {"limit": 1}, KEY)
    first = landing.pages(client, "/x", {"limit": 1})
    assert [next(first).data["results"] for _ in range(2)] == [[1], [2]]
    first.close()  # the run dies after two pages
    assert client.requests == 2
    resumed = list(PageStore(tmp_path, "demo", "/x", {"limit": 1}, KEY).pages(client, "/x", {"limit": 1}))
    assert [p.data["results"] for p in resumed] == [[1], [2], [3]]
    assert [p.resumed for p in resumed] == [True, True, False]
    assert client.requests == 3  # only the missing page was fetched; the bare `?` next_url ended it
    files = sorted(p.name for p in landing.folder.rglob("*") if p.is_file())
    assert files == ["_COMPLETE", "page-000001.json", "page-000002.json", "page-000003.json", "request.json"]
    again = list(PageStore(tmp_path, "demo", "/x", {"limit": 1}, KEY).pages(client, "/x", {"limit": 1}))
    assert not any(p.resumed for p in again) and client.requests == 6  # a complete listing is fetched afresh


def test_landing_never_holds_the_key(tmp_path: Path) -> None:
    body = {"results": [], "echo": f"https://api.example.test/x?apiKey={KEY}"}
    client = _client(lambda request: httpx.Response(200, json=body))
    list(PageStore(tmp_path, "demo", "/x", {}, KEY).pages(client, "/x", {}))
    for file in tmp_path.rglob("*"):
        assert KEY not in str(file)
        if file.is_file():
            assert KEY.encode() not in file.read_bytes()
    assert json.loads(next(tmp_path.rglob("page-*.json")).read_text())["echo"].endswith("apiKey=***")


def test_tickers_file_errors_name_the_line(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# universe\nAAPL\n\nBRK.B  # class B\nAAPL\n")
    assert read_tickers_file(good) == ["AAPL", "BRK.B"]
    bad = tmp_path / "bad.txt"
    bad.write_text("AAPL\nnot a ticker\n")
    with pytest.raises(UsageError, match=r"bad.txt: line 2: 'not a ticker'"):
        read_tickers_file(bad)
    with pytest.raises(UsageError, match="cannot read"):
        read_tickers_file(tmp_path / "missing.txt")


def test_a_rejected_saved_cursor_restarts_the_listing(tmp_path: Path) -> None:
    pages = {
        None: {"results": [1], "next_url": "https://api.example.test/x?cursor=p2"},
        "p2": {"results": [2]},
    }
    expired = {"value": False}

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        if cursor and expired["value"]:
            return httpx.Response(400, json={"status": "ERROR", "error": "invalid cursor"})
        return httpx.Response(200, json=pages[cursor])

    client = _client(handler)
    first = PageStore(tmp_path, "demo", "/x", {}, KEY).pages(client, "/x", {})
    next(first)
    first.close()
    expired["value"] = True
    # The saved cursor is rejected: that fetch is marked stale and the listing starts over (and fails
    # again here, since every cursor is rejected for now).
    with pytest.raises(RestError):
        list(PageStore(tmp_path, "demo", "/x", {}, KEY).pages(client, "/x", {}))
    expired["value"] = False
    landing = PageStore(tmp_path, "demo", "/x", {}, KEY)
    assert [p.data["results"] for p in landing.pages(client, "/x", {})] == [[1], [2]]
    markers = sorted(p.relative_to(landing.folder).parts[-1] for p in landing.folder.rglob("_*"))
    assert markers == ["_COMPLETE", "_STALE"]


def test_a_missing_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RestError, match="POLYGON_API_KEY"):
        PolygonClient("https://api.example.test", "", limiter=RateLimiter(None))
    from loaders.rest import commands

    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("POLYGON_API_KEY", raising=False)
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    outcome = commands.run_dataset("splits", None, None)
    assert not outcome.ok and "POLYGON_API_KEY" in (outcome.error or "")
