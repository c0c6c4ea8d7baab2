"""REST ingest against the sandbox server: every dataset loads, re-loads never duplicate, backfills leave
the forward cursor alone, faults and rate limits are survived, and a killed listing resumes from landing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import uvicorn

from loaders.rest import commands, settings
from loaders.sandbox.faults import Faults
from loaders.sandbox.market import Market, MarketConfig
from loaders.sandbox.rest import create_app

KEY = "rest-test-key-7f3a"
START = dt.date(2025, 1, 2)
END = dt.date(2025, 3, 31)


@dataclasses.dataclass
class Server:
    market: Market
    faults: Faults
    url: str


@pytest.fixture
def server() -> Iterator[Server]:
    """A private REST sandbox (8 tickers, one quarter) on a free port: tests advance its clock and change
    its records, which the session-wide `sandbox` of conftest.py must not see."""
    market = Market(
        MarketConfig(
            seed=11,
            start=START,
            end=END,
            today=dt.date(2025, 3, 14),
            tickers=8,
            option_underlyings=1,
            contracts_per_underlying=6,
            minute=False,
        )
    )
    faults = Faults(seed=7)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(
        uvicorn.Config(create_app(market, faults, KEY), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "sandbox did not start"
        time.sleep(0.02)
    yield Server(market, faults, f"http://127.0.0.1:{port}")
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def data_dir(tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("QM_DATA_DIR", str(data))
    monkeypatch.setenv("DLT_DATA_DIR", str(data / "dlt"))
    monkeypatch.setenv("POLYGON_API_URL", server.url)
    monkeypatch.setenv("POLYGON_API_KEY", KEY)
    monkeypatch.setattr(settings, "BACKOFF_INITIAL_SECONDS", 0.01)
    return data


def ingest(
    dataset: str, start: dt.date | None = None, end: dt.date | None = None, **kwargs: Any
) -> commands.Outcome:
    options: dict[str, Any] = {"incremental": True, "max_concurrent": 2}
    options.update(kwargs)
    outcome = commands.run_dataset(dataset, start, end, **options)
    assert outcome.ok, outcome.error
    return outcome


def rows(data: Path, relative: str, columns: str = "*", tail: str = "") -> list[tuple[Any, ...]]:
    """`select <columns> from <bronze table> <tail>`, sorted, read with plain DuckDB."""
    glob = data / "bronze" / relative / "*" / "*.parquet"
    relation = f"read_parquet('{glob}', hive_partitioning = true)"
    return duckdb.sql(f"select {columns} from {relation} {tail} order by all").fetchall()


def duplicates(data: Path, relative: str, key: str) -> list[tuple[Any, ...]]:
    return rows(data, relative, f"{key}, count(*) as n", "group by all having count(*) > 1")


KEYS = {
    "news": ("news", "id"),
    "financials": ("fundamentals/financials", "filing_id, ticker, statement, line_item"),
    "financial_filings": ("fundamentals/financial_filings", "filing_id, ticker"),
    "short_interest": ("short_interest", "ticker, settlement_date"),
    "short_volume": ("short_volume", "ticker, date"),
    "splits": ("splits", "id"),
    "dividends": ("dividends", "id"),
    "ticker_events": ("ticker_events", "id"),
    "tickers": ("tickers", "ticker"),
    "options_contracts": ("options_contracts", "ticker"),
    "market_holidays": ("market_holidays", "exchange, date"),
}


def test_every_dataset_loads_and_a_second_load_adds_no_duplicates(server: Server, data_dir: Path) -> None:
    order = ["tickers", *(d for d in settings.DATASETS if d != "tickers")]  # ticker_events reads the universe
    for dataset in order:
        ingest(dataset, START, END)  # a bounded range: three month listings per dated dataset
    first = {table: rows(data_dir, folder) for table, (folder, _) in KEYS.items()}
    for table, (folder, key) in KEYS.items():
        assert first[table], f"{table} loaded no rows"
        dupes = duplicates(data_dir, folder, key)
        assert dupes == [], f"{table} has duplicate keys"
    for dataset in order:
        ingest(dataset, START, END, incremental=dataset not in {"news", "fundamentals"})
    for table, (folder, _) in KEYS.items():
        again = rows(data_dir, folder, "* exclude (_dlt_load_id)")
        assert len(again) == len(first[table]), f"{table} changed size on reload"

    # Bronze holds what the sandbox serves, typed.
    served_news = {a["id"] for a in server.market.news() if a["published_utc"] >= START.isoformat()}
    assert {r[0] for r in rows(data_dir, "news", "id")} == served_news
    insights = rows(data_dir, "news", "len(insights), typeof(insights), typeof(published_utc)")
    assert (
        insights[0][1].startswith("STRUCT(ticker VARCHAR, sentiment VARCHAR")
        and insights[0][2] == "TIMESTAMP WITH TIME ZONE"
    )
    splits = rows(data_dir, "splits", "id, ticker, execution_date, split_from, split_to, _dlt_load_id")
    assert {(r[1], r[2].isoformat()) for r in splits} == {
        (s["ticker"], s["execution_date"])
        for s in server.market.splits()
        if s["execution_date"] >= START.isoformat()
    }
    assert rows(data_dir, "dividends", "distinct typeof(ex_dividend_date), typeof(cash_amount)") == [
        ("DATE", "DOUBLE")
    ]
    statements = {r[0] for r in rows(data_dir, "fundamentals/financials", "distinct statement")}
    assert {"income_statement", "balance_sheet"} <= statements
    active = rows(data_dir, "tickers", "active, count(*)", "group by all")
    assert dict(active).get(True, 0) > 0

    # The key never reaches landing, bronze or dlt state (names or contents).
    for path in data_dir.rglob("*"):
        assert KEY not in path.name
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_backfill_uses_end_value_and_leaves_the_forward_cursor(server: Server, data_dir: Path) -> None:
    forward = ingest("news", dt.date(2025, 3, 1))
    assert forward.mode == "forward"
    cursor = _news_cursor(data_dir)
    assert cursor.date() <= server.market.today
    before = rows(data_dir, "news", "id")

    back = ingest("news", dt.date(2025, 1, 2), dt.date(2025, 1, 10))
    assert back.mode == "backfill"
    assert _news_cursor(data_dir) == cursor
    dates = {r[0] for r in rows(data_dir, "news", "distinct published_date")}
    assert min(dates) <= dt.date(2025, 1, 10) and not any(
        dt.date(2025, 1, 11) <= d < dt.date(2025, 3, 1) for d in dates
    )
    assert len(rows(data_dir, "news", "id")) > len(before)

    server.market.advance(5)
    later = ingest("news", None, server.market.today)  # -e today must include today's articles
    assert later.mode == "forward" and later.requests == 1
    assert _news_cursor(data_dir) > cursor
    served = {a["id"] for a in server.market.news() if a["published_utc"] >= "2025-03-01"}
    loaded = {r[0] for r in rows(data_dir, "news", "id") if r[0] in served}
    assert loaded == served
    assert duplicates(data_dir, "news", "id") == []

    cursor = _news_cursor(data_dir)
    full = ingest("news", dt.date(2025, 1, 2), server.market.today, incremental=False)
    assert full.mode == "full" and _news_cursor(data_dir) == cursor
    everything = {a["id"] for a in server.market.news() if a["published_utc"] >= "2025-01-02"}
    assert {r[0] for r in rows(data_dir, "news", "id")} == everything
    assert duplicates(data_dir, "news", "id") == []


def _news_cursor(data_dir: Path) -> dt.datetime:
    import dlt

    pipeline = dlt.pipeline("quantmini_news", pipelines_dir=str(data_dir / "dlt" / "pipelines"))
    value = commands._forward_cursor(pipeline, "news", "published_utc")
    assert value is not None
    return value


def test_republished_article_replaces_the_old_version(
    server: Server, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest("news", dt.date(2025, 3, 1))
    original = server.market.news
    victim = next(a for a in original() if a["published_utc"] >= "2025-03-03")

    def republished() -> list[dict]:
        out = []
        for article in original():
            if article["id"] == victim["id"]:
                article = {
                    **article,
                    "title": "Corrected: " + article["title"],
                    "published_utc": "2025-03-13T15:00:00Z",
                }
            out.append(article)
        return out

    monkeypatch.setattr(server.market, "news", republished)
    server.market.advance(1)  # the correction appears on a later sandbox day (the server caches per day)
    ingest("news", dt.date(2025, 3, 1), incremental=False)
    versions = rows(data_dir, "news", "title, published_date", f"where id = '{victim['id']}'")
    assert len(versions) == 1
    assert versions[0][0].startswith("Corrected: ") and versions[0][1] == dt.date(2025, 3, 13)


def _news_pages_of(limit: int) -> settings.Dataset:
    """The news dataset asking for `limit` articles a page (more pages, more requests to fault)."""
    news = settings.DATASETS["news"]
    assert news.endpoint is not None
    return dataclasses.replace(news, endpoint=dataclasses.replace(news.endpoint, limit=limit))


def test_faults_and_server_rate_limit_are_survived(
    server: Server, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(settings.DATASETS, "news", _news_pages_of(15))
    server.faults.error_rate = 0.25
    server.faults.truncate_rate = 0.2
    server.faults.rate_limit = 4.0
    # one listing, one client thread: the seeded faults then hit the same requests on every run
    outcome = ingest("news", START, rate_limit=50.0, max_concurrent=1)
    assert outcome.retries > 0 and outcome.pages > 3
    served = {a["id"] for a in server.market.news() if a["published_utc"] >= START.isoformat()}
    assert {r[0] for r in rows(data_dir, "news", "id")} == served


def test_tickers_file_and_short_data_in_one_run(server: Server, data_dir: Path, tmp_path: Path) -> None:
    names = sorted(
        {t["ticker"] for t in server.market.tickers() if t.get("type") == "CS" and t.get("active")}
    )[:2]
    universe = tmp_path / "universe.txt"
    universe.write_text("\n".join(names) + "\n")
    code = commands.ingest_command(
        "fundamentals",
        START,
        None,
        incremental=True,
        max_concurrent=2,
        rate_limit=None,
        tickers_file=universe,
        include_short_data=True,
        backfill_years=None,
    )
    assert code == 0
    for folder in ("fundamentals/financials", "short_interest", "short_volume"):
        loaded = {r[0] for r in rows(data_dir, folder, "distinct ticker")}
        assert loaded and loaded <= set(names), folder
    bad = tmp_path / "bad.txt"
    bad.write_text("A B\n")
    assert (
        commands.ingest_command(
            "news",
            None,
            None,
            incremental=True,
            max_concurrent=1,
            rate_limit=None,
            tickers_file=bad,
            include_short_data=False,
            backfill_years=None,
        )
        == 2
    )


def test_killed_listing_resumes_from_landing_without_duplicates(server: Server, data_dir: Path) -> None:
    server.faults.latency = 0.3  # 15 pages: the kill lands seconds before the listing could complete
    script = (
        "import dataclasses, datetime as dt\n"
        "from loaders.rest import commands, settings\n"
        "news = settings.DATASETS['news']\n"
        "settings.DATASETS['news'] = dataclasses.replace(\n"
        "    news, endpoint=dataclasses.replace(news.endpoint, limit=8)\n"
        ")\n"
        f"commands.run_dataset('news', dt.date.fromisoformat('{START}'), None)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    landing = data_dir / "landing" / "rest" / "news"
    deadline = time.monotonic() + 60
    try:
        while len(list(landing.rglob("page-*.json"))) < 2:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not list(landing.rglob("_COMPLETE"))
    assert not list((data_dir / "bronze").glob("news/*/*.parquet"))
    landed = len(list(landing.rglob("page-*.json")))

    server.faults.latency = 0.0
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(settings.DATASETS, "news", _news_pages_of(8))
        outcome = ingest("news", START)
    assert outcome.resumed_pages == landed
    assert outcome.requests == outcome.pages - landed
    served = {a["id"] for a in server.market.news() if a["published_utc"] >= START.isoformat()}
    assert {r[0] for r in rows(data_dir, "news", "id")} == served
    assert duplicates(data_dir, "news", "id") == []


@pytest.mark.slow
def test_five_requests_per_minute_run_completes(server: Server, data_dir: Path) -> None:
    server.faults.rate_limit = 5 / 60  # the sandbox answers 429 to anything faster
    started = time.monotonic()
    outcome = ingest("tickers", rate_limit=5 / 60)
    elapsed = time.monotonic() - started
    assert outcome.requests == 2 and outcome.rate_limited == 0
    assert elapsed >= 12.0
    served = {t["ticker"] for t in server.market.tickers()}
    assert {r[0] for r in rows(data_dir, "tickers", "ticker")} == served


def test_news_and_reference_data_load_from_the_shared_sandbox(
    sandbox: Any, sandbox_env: dict[str, str]
) -> None:
    """The same loaders against the project's SandboxServer (REST + S3), through the CLI entry point."""
    data = Path(sandbox_env["QM_DATA_DIR"])
    for dataset in ("tickers", "splits", "news"):
        code = commands.ingest_command(
            dataset,
            sandbox.market.sessions[0],
            None,
            incremental=True,
            max_concurrent=2,
            rate_limit=None,
            tickers_file=None,
            include_short_data=False,
            backfill_years=None,
        )
        assert code == 0, dataset
    served = {
        a["id"] for a in sandbox.market.news() if a["published_utc"] >= sandbox.market.sessions[0].isoformat()
    }
    assert {r[0] for r in rows(data, "news", "id")} == served
    assert duplicates(data, "tickers", "ticker") == []
    from loaders import runs

    recorded = runs.read_runs(data / "runs", "news")  # announced at the start, recorded at the end
    assert len(recorded) == 1 and recorded[0]["status"] == "ok"


def test_a_load_that_bronze_rejects_fails_once_and_does_not_block_later_runs(
    server: Server, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.bronze import partitions

    real_merge = partitions.merge_partitions

    def reject(*args: Any, **kwargs: Any) -> dict[str, int]:
        raise ValueError("partition column 'execution_date' has 1 null value(s)")

    monkeypatch.setattr(partitions, "merge_partitions", reject)
    failed = commands.run_dataset("splits", START, None)
    assert not failed.ok and "splits.splits" in (failed.error or "") and "null value" in (failed.error or "")
    monkeypatch.setattr(partitions, "merge_partitions", real_merge)
    ingest("splits", START)
    assert rows(data_dir, "splits", "count(*)")[0][0] > 0


def test_dateless_options_contracts_load_the_expired_contracts_the_option_bars_need(
    server: Server, data_dir: Path
) -> None:
    """`ingest -t options_contracts` with no dates (what bulk and refresh weekly run) must also list the
    expired contracts: a bar of an expired contract with no reference row maps to no underlying."""
    market = server.market
    sessions = [d for d in market.sessions if d <= market.today]
    import pyarrow.parquet as pq

    for day in sessions:  # the option bars in bronze (their ticker column and session folders)
        folder = data_dir / "bronze" / "options_daily" / f"session_date={day}"
        folder.mkdir(parents=True)
        pq.write_table(market.option_day_aggs(day), folder / "part-0.parquet")
    traded = {t for day in sessions for t in market.option_day_aggs(day).column("ticker").to_pylist()}
    expired = {
        t for t in traded if dt.date(2000 + int(t[-15:-13]), int(t[-13:-11]), int(t[-11:-9])) < market.today
    }
    assert expired, "the sandbox should have contracts that traded and expired in this range"

    ingest("options_contracts")
    loaded = rows(data_dir, "options_contracts", "ticker, expiration_date")
    assert traded <= {t for t, _ in loaded}, sorted(traded - {t for t, _ in loaded})[:5]
    # the next dateless run (a weekly refresh) lists expirations from the newest one loaded, not all history
    newest_expired = max(e for _, e in loaded if e < market.today)
    assert commands.expired_contracts_since(data_dir / "bronze", market.today) == newest_expired
