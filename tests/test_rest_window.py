"""The daily refresh lists splits and dividends over a trailing window by their date parameter, the weekly
refresh (and a plain ingest) lists them whole: real sandbox, real dlt, the sandbox's request log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import uvicorn

from loaders import runs
from loaders.config import load_settings
from loaders.ops import refresh
from loaders.rest import commands, settings
from loaders.sandbox.faults import Faults
from loaders.sandbox.market import Market, MarketConfig
from loaders.sandbox.rest import SandboxRest, create_app

KEY = "rest-window-key-51c2"
WINDOWED = ("splits", "dividends")
DATE_PARAM = {"splits": "execution_date", "dividends": "ex_dividend_date"}
PATH = {"splits": "/v3/reference/splits", "dividends": "/v3/reference/dividends"}


@dataclasses.dataclass
class Server:
    market: Market
    rest: SandboxRest
    url: str

    def requests(self, dataset: str) -> list[dict[str, str]]:
        return [params for path, params in self.rest.requests if path == PATH[dataset]]


@pytest.fixture
def server() -> Iterator[Server]:
    """A private sandbox with 15 months of history (8 tickers, quarterly dividends, a few splits), so a
    30-day window leaves most actions outside it; tests advance its clock and correct its records."""
    market = Market(
        MarketConfig(
            seed=11,
            start=dt.date(2024, 1, 2),
            end=dt.date(2025, 6, 30),
            today=dt.date(2025, 3, 14),
            tickers=8,
            option_underlyings=1,
            contracts_per_underlying=4,
            minute=False,
        )
    )
    app = create_app(market, Faults(seed=3), KEY)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "sandbox did not start"
        time.sleep(0.02)
    yield Server(market, app.state.sandbox_rest, f"http://127.0.0.1:{port}")
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def use_lake(tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """Point QuantMini at the data dir `tmp_path/<name>` (several lakes over one sandbox); the UTC day the
    loaders and the refresh see is the sandbox's clock."""
    monkeypatch.setenv("POLYGON_API_URL", server.url)
    monkeypatch.setenv("POLYGON_API_KEY", KEY)
    monkeypatch.delenv(settings.REFRESH_WINDOW_SETTING, raising=False)
    monkeypatch.setattr(settings, "BACKOFF_INITIAL_SECONDS", 0.01)
    monkeypatch.setattr(commands, "_today", lambda: server.market.today)
    monkeypatch.setattr(refresh, "_today", lambda: server.market.today)

    def use(name: str) -> Path:
        data = tmp_path / name
        monkeypatch.setenv("QM_DATA_DIR", str(data))
        monkeypatch.setenv("DLT_DATA_DIR", str(data / "dlt"))
        return data

    return use


def ingest(dataset: str, start: dt.date | None = None) -> None:
    """`quantmini ingest -t <dataset> [-s start]` in-process (ledger, summary and all)."""
    from loaders.ops import runner

    assert runner.ingest(dataset, start, None, incremental=True, max_concurrent=2) == 0


def daily(server: Server) -> refresh.RefreshSummary:
    summary = refresh.run_refresh(load_settings(), "daily", list(WINDOWED), build=False, validate=False)
    assert summary.code == 0, summary.to_json()
    return summary


def weekly() -> refresh.RefreshSummary:
    summary = refresh.run_refresh(load_settings(), "weekly", list(WINDOWED), build=False, validate=False)
    assert summary.code == 0, summary.to_json()
    return summary


def bronze(data: Path, dataset: str) -> list[tuple[Any, ...]]:
    """Every stored row, load bookkeeping aside, with its partition date."""
    glob = data / "bronze" / dataset / "*" / "*.parquet"
    relation = f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
    return duckdb.sql(f"select id, * exclude (id, _dlt_load_id) from {relation} order by all").fetchall()


def window_anchor(data: Path, dataset: str, listed_on: dt.date) -> dt.date:
    """The day a daily window reaches back from: the last listing, or the newest action dated by then."""
    folders = (data / "bronze" / dataset).glob("*=*")
    held = [day for f in folders if (day := dt.date.fromisoformat(f.name.split("=")[1])) <= listed_on]
    return max(held) if held else listed_on


def bronze_files(data: Path, dataset: str) -> dict[str, tuple[int, int]]:
    """Partition folder -> (inode, mtime) of its file: tells which partitions a merge rewrote."""
    out = {}
    for path in sorted((data / "bronze" / dataset).glob("*/*.parquet")):
        st = path.stat()
        out[path.parent.name] = (st.st_ino, st.st_mtime_ns)
    return out


def test_daily_refresh_lists_a_window_and_ends_with_the_bronze_of_a_whole_listing(
    server: Server, use_lake: Callable[[str], Path]
) -> None:
    windowed = use_lake("windowed")
    for name in WINDOWED:
        ingest(name)  # the first load lists the whole history
        assert server.requests(name) and all(
            not any(k.startswith(DATE_PARAM[name]) for k in params) for params in server.requests(name)
        )
    loaded_on = server.market.today
    before = {name: bronze_files(windowed, name) for name in WINDOWED}
    future = [d for d in server.market.dividends() if d["ex_dividend_date"] > loaded_on.isoformat()]
    assert future, "the sandbox declares dividends ahead of their ex-date"
    assert {d["id"] for d in future} <= {r[0] for r in bronze(windowed, "dividends")}

    last_listing = loaded_on
    for _ in range(3):  # three mornings: each lists only the trailing window
        server.market.advance(5)
        server.rest.requests.clear()
        summary = daily(server)
        for name in WINDOWED:
            sent = server.requests(name)
            assert sent, f"{name} was not requested"
            # the window reaches 30 days back from the previous listing (the first: the whole load)
            expected = (window_anchor(windowed, name, last_listing) - dt.timedelta(days=30)).isoformat()
            gte = f"{DATE_PARAM[name]}.gte"
            # cut into calendar months for parallel listings, the newest with no upper bound: actions
            # announced ahead are listed
            assert all(gte in p for p in sent) and min(p[gte] for p in sent) == expected
            open_ended = [p for p in sent if not any(k.startswith(f"{DATE_PARAM[name]}.l") for k in p)]
            assert len(open_ended) == 1
            detail = next(s.detail for s in summary.steps if s.name == f"ingest {name}")
            assert detail.startswith(f"{expected}..latest")
        last_listing = server.market.today
        # partitions before the window are never rewritten by a windowed merge
        for name in WINDOWED:
            cut = (last_listing - dt.timedelta(days=60)).isoformat()
            for folder, stamp in before[name].items():
                if folder.split("=")[1] < cut:
                    assert bronze_files(windowed, name)[folder] == stamp

    new = [d for d in server.market.dividends() if d["declaration_date"] > loaded_on.isoformat()]
    assert new, "dividends were declared after the first load"
    whole = use_lake("whole")
    for name in WINDOWED:
        ingest(name)
        assert bronze(windowed, name) == bronze(whole, name)
    assert {d["id"] for d in new} <= {r[0] for r in bronze(windowed, "dividends")}


def test_a_corrected_old_action_is_kept_by_daily_refreshes_and_taken_by_the_weekly_one(
    server: Server, use_lake: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = use_lake("lake")
    for name in WINDOWED:
        ingest(name)
    original = server.market.dividends
    listed = original()
    old = next(d for d in listed if d["ex_dividend_date"] < "2024-09-01")
    window_start = (server.market.today - dt.timedelta(days=29)).isoformat()
    recent = next(d for d in listed if d["ex_dividend_date"] >= window_start)  # declared ahead
    moved = next(d for d in listed if d["ex_dividend_date"] < "2024-09-01" and d["id"] != old["id"])

    def corrected() -> list[dict[str, Any]]:
        out = []
        for d in original():
            if d["id"] == old["id"]:
                d = {**d, "cash_amount": d["cash_amount"] + 1.0}  # amount restated long after
            elif d["id"] == moved["id"]:
                d = {**d, "ex_dividend_date": "2025-03-03"}  # ex-date corrected into the window
            elif d["id"] == recent["id"]:
                continue  # withdrawn before its ex-date: Polygon no longer lists it
            out.append(d)
        return out

    monkeypatch.setattr(server.market, "dividends", corrected)
    server.market.advance(1)  # the server caches answers per sandbox day

    def stored(ident: str) -> list[tuple[Any, ...]]:
        glob = data / "bronze" / "dividends" / "*" / "*.parquet"
        return duckdb.sql(
            f"select cash_amount, ex_dividend_date from read_parquet('{glob}', hive_partitioning = true) "
            f"where id = '{ident}'"
        ).fetchall()

    def as_date(text: str) -> dt.date:
        return dt.date.fromisoformat(text)

    daily(server)
    # outside the window: the old amount stays, the row is not lost
    assert stored(old["id"]) == [(old["cash_amount"], as_date(old["ex_dividend_date"]))]
    # listed inside the window: moved there, its old copy gone, as a whole listing moves a key
    assert stored(moved["id"]) == [(moved["cash_amount"], dt.date(2025, 3, 3))]
    # inside the window but no longer listed: kept, as the whole listing keeps what it no longer lists
    assert stored(recent["id"]) == [(recent["cash_amount"], as_date(recent["ex_dividend_date"]))]

    weekly()
    assert stored(old["id"]) == [(old["cash_amount"] + 1.0, as_date(old["ex_dividend_date"]))]
    assert stored(recent["id"]) == [(recent["cash_amount"], as_date(recent["ex_dividend_date"]))]
    server.market.advance(1)
    daily(server)  # a later daily refresh keeps what the weekly one corrected
    assert stored(old["id"]) == [(old["cash_amount"] + 1.0, as_date(old["ex_dividend_date"]))]
    assert stored(moved["id"]) == [(moved["cash_amount"], dt.date(2025, 3, 3))]

    # and the lake equals one whole listing of the corrected history, but for the withdrawn dividend,
    # which a lake that listed it before keeps whichever way it is refreshed
    kept = bronze(data, "dividends")
    whole = use_lake("whole")
    ingest("dividends")
    assert [r for r in kept if r[0] != recent["id"]] == bronze(whole, "dividends")


def test_weekly_refresh_plain_ingest_and_a_zero_window_list_the_whole_history(
    server: Server, use_lake: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    use_lake("lake")
    ingest("dividends")
    server.market.advance(1)

    def whole_listings() -> bool:
        sent = server.requests("dividends")
        return bool(sent) and all(not any(k.startswith("ex_dividend_date") for k in p) for p in sent)

    for run in (weekly, lambda: ingest("dividends")):
        server.rest.requests.clear()
        run()
        assert whole_listings()
    monkeypatch.setenv(settings.REFRESH_WINDOW_SETTING, "0")
    server.rest.requests.clear()
    daily(server)
    assert whole_listings()
    monkeypatch.setenv(settings.REFRESH_WINDOW_SETTING, "7")
    server.rest.requests.clear()
    daily(server)
    gte = min(p["ex_dividend_date.gte"] for p in server.requests("dividends"))
    anchor = window_anchor(load_settings().data_dir, "dividends", server.market.today)
    assert gte == (anchor - dt.timedelta(days=7)).isoformat()
    monkeypatch.setenv(settings.REFRESH_WINDOW_SETTING, "a month")
    summary = refresh.run_refresh(load_settings(), "daily", ["dividends"], build=False, validate=False)
    assert summary.code == refresh.EXIT_INGEST
    assert settings.REFRESH_WINDOW_SETTING in summary.steps[0].detail


def test_no_complete_listing_in_the_ledger_means_a_whole_listing(
    server: Server, use_lake: Callable[[str], Path]
) -> None:
    data = use_lake("lake")
    cfg = load_settings()
    today = server.market.today
    assert commands.refresh_window_start("dividends", cfg.runs_dir, cfg.bronze_dir, today) is None
    ingest("dividends", dt.date(2025, 3, 1))  # narrower than the window: vouches for nothing before it
    assert commands.refresh_window_start("dividends", cfg.runs_dir, cfg.bronze_dir, today) is None
    ingest("dividends")
    start = commands.refresh_window_start("dividends", cfg.runs_dir, cfg.bronze_dir, today)
    newest = max(
        d["ex_dividend_date"] for d in server.market.dividends() if d["ex_dividend_date"] <= str(today)
    )
    assert start == dt.date.fromisoformat(newest) - dt.timedelta(days=30)  # sparse: the newest it held
    assert commands.refresh_window_start(
        "dividends", cfg.runs_dir, cfg.bronze_dir, dt.date.fromisoformat(newest)
    ) == dt.date.fromisoformat(newest) - dt.timedelta(days=30)
    recorded = [r for r in runs.read_runs(cfg.runs_dir, "dividends") if r.get("status") == "ok"]
    assert recorded[-1]["args"]["listed_on"] == today.isoformat()
    for folder in (data / "bronze" / "dividends").iterdir():  # bronze lost: list it whole again
        for file in folder.glob("*.parquet"):
            file.unlink()
    assert commands.refresh_window_start("dividends", cfg.runs_dir, cfg.bronze_dir, today) is None
    assert commands.refresh_window_start("news", cfg.runs_dir, cfg.bronze_dir, today) is None


def test_dlt_pipeline_info_works_after_windowed_loads(
    server: Server, use_lake: Callable[[str], Path]
) -> None:
    data = use_lake("lake")
    ingest("dividends")
    server.market.advance(2)
    daily(server)
    dlt_cli = Path(sys.executable).with_name("dlt")
    env = {**os.environ, "DLT_DATA_DIR": str(data / "dlt")}
    shown = subprocess.run(
        [str(dlt_cli), "pipeline", "quantmini_dividends", "info"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stderr
    assert "quantmini_dividends" in shown.stdout and "dividends" in shown.stdout
