"""Only real failures are failures: sessions the bucket has not published, or not yet, are reported as
such, never as failed, and the ledger forgets failures a listing proves can never load."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from loaders import runs
from loaders.calendar import session_bounds, sessions
from loaders.flatfiles import commands
from loaders.flatfiles.commands import EXIT_FAILED, Publication, ingest_command, unpublished_status


def _ingest(dataset: str, start: dt.date | None, end: dt.date | None) -> int:
    return ingest_command(dataset, start, end, incremental=True, max_concurrent=3)


def _runs_dir(env: dict[str, str]) -> Path:
    return Path(env["QM_DATA_DIR"]) / "runs"


def _last(env: dict[str, str], dataset: str) -> dict[str, Any]:
    run = runs.last_run(_runs_dir(env), dataset)
    assert run is not None
    return run


def _items(env: dict[str, str], dataset: str) -> dict[str, str]:
    return {i["date"]: i["status"] for i in _last(env, dataset)["items"]}


def _now_at(monkeypatch: pytest.MonkeyPatch, when: dt.datetime) -> None:
    monkeypatch.setattr(commands, "utcnow", lambda: when)


def test_dates_before_the_first_file_are_not_published_not_failed(
    sandbox_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's `ingest -t options_daily -s 2023-01-01 ...` on a bucket whose options start later."""
    before = sessions("2025-09-02", "2025-09-30")  # the sandbox market starts 2025-10-01
    assert _ingest("options_daily", dt.date(2025, 9, 1), dt.date(2025, 10, 8)) == 0
    run = _last(sandbox_env, "options_daily")
    assert run["status"] == "ok" and run["not_published"] == len(before)
    assert set(_items(sandbox_env, "options_daily").values()) == {"loaded"}  # no item for September
    assert runs.outstanding_failures(_runs_dir(sandbox_env)) == []
    err = " ".join(capsys.readouterr().err.split())
    assert f"{len(before)} session(s) not published (2025-09-02..2025-09-30)" in err
    assert "published from 2025-10-01" in err


def test_without_an_end_the_run_ends_at_the_newest_published_file_not_the_host_clock(
    sandbox: Any, sandbox_env: dict[str, str]
) -> None:
    newest = sandbox.market.today
    start = sessions(newest - dt.timedelta(days=8), newest)[0]
    assert _ingest("stocks_daily", start, None) == 0
    run = _last(sandbox_env, "stocks_daily")
    assert run["args"]["end"] == newest.isoformat()
    assert set(_items(sandbox_env, "stocks_daily").values()) == {"loaded"} and "not_published" not in run
    assert _ingest("stocks_daily", None, None) == 0  # up to date: nothing asked, nothing failed
    assert runs.outstanding_failures(_runs_dir(sandbox_env)) == []


def test_a_session_after_the_newest_file_is_pending_within_the_grace_period(
    sandbox: Any, sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    newest = sandbox.market.today
    following = sessions(newest + dt.timedelta(days=1), newest + dt.timedelta(days=7))[0]
    close = session_bounds(following)[1]
    _now_at(monkeypatch, close + dt.timedelta(hours=3))  # the morning after: its file is not out yet
    assert _ingest("stocks_daily", newest, following) == 0
    assert _items(sandbox_env, "stocks_daily") == {
        newest.isoformat(): "loaded",
        following.isoformat(): "pending",
    }
    [pending] = runs.pending_items(_runs_dir(sandbox_env), "stocks_daily")
    assert pending["date"] == following.isoformat() and pending["due"].startswith(
        (close + dt.timedelta(hours=24)).date().isoformat()
    )
    # long after its due time the bucket is simply behind: not published, and the pending item is dismissed
    _now_at(monkeypatch, close + dt.timedelta(days=5))
    assert _ingest("stocks_daily", newest, following) == 0
    assert _items(sandbox_env, "stocks_daily") == {newest.isoformat(): "skipped"}
    assert runs.pending_items(_runs_dir(sandbox_env), "stocks_daily") == []


def test_a_missing_file_inside_the_published_range_is_pending_then_a_failure(
    sandbox_env: dict[str, str], faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = sessions("2025-11-03", "2025-11-07")
    gap = days[2]
    close = session_bounds(gap)[1]
    faults.update(missing_days=[gap.isoformat()])
    _now_at(monkeypatch, close + dt.timedelta(hours=10))
    assert _ingest("stocks_daily", days[0], days[-1]) == 0
    assert _items(sandbox_env, "stocks_daily")[gap.isoformat()] == "pending"
    # the grace period is configurable: 6 hours after the close the same file is overdue, a real gap
    monkeypatch.setenv("QM_PUBLISH_GRACE_HOURS", "6")
    assert _ingest("stocks_daily", days[0], days[-1]) == EXIT_FAILED
    [failure] = runs.outstanding_failures(_runs_dir(sandbox_env), "stocks_daily")
    assert failure["date"] == gap.isoformat() and "404" in failure["error"]
    assert "retry-failed --dismiss" in failure["error"]
    monkeypatch.delenv("QM_PUBLISH_GRACE_HOURS")
    faults.reset()  # published late after all: the next run loads it and the failure is cleared
    assert _ingest("stocks_daily", days[0], days[-1]) == 0
    assert _items(sandbox_env, "stocks_daily")[gap.isoformat()] == "loaded"
    assert runs.outstanding_failures(_runs_dir(sandbox_env)) == []


def test_a_bad_grace_period_names_the_setting(
    sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QM_PUBLISH_GRACE_HOURS", "a day")
    assert _ingest("stocks_daily", dt.date(2025, 10, 1), dt.date(2025, 10, 2)) == 78
    assert "QM_PUBLISH_GRACE_HOURS" in capsys.readouterr().err


def test_failures_a_listing_proves_unpublishable_are_dismissed_by_the_next_run(
    sandbox_env: dict[str, str],
) -> None:
    """A ledger written before ingest knew what is published: `retry-failed` can clear it now."""
    from loaders.config import load_settings
    from loaders.ops.retry import plan_retries, retry_failed_command

    old = runs.start_run(_runs_dir(sandbox_env), "options_daily", "flatfiles", {"start": "2025-09-02"})
    for day in sessions("2025-09-02", "2025-09-05"):
        old.add("failed", date=day.isoformat(), error="missing: HTTP 404 no such file")
    old.add("failed", date="2025-10-01", error="InternalError")  # a real failure inside the range
    old.finish()
    assert len(plan_retries(load_settings())[0].ranges) == 2
    assert retry_failed_command(["options_daily"], build=False) == 0
    assert runs.outstanding_failures(_runs_dir(sandbox_env)) == []
    dismissals = [
        r for r in runs.read_runs(_runs_dir(sandbox_env), "options_daily") if r["kind"] == "dismiss"
    ]
    assert [len(d["items"]) for d in dismissals] == [4]
    assert "published from 2025-10-01" in dismissals[0]["items"][0]["reason"]
    assert _last(sandbox_env, "options_daily")["kind"] == "flatfiles"  # dismissals are not runs


def test_dismiss_clears_failures_by_hand(sandbox_env: dict[str, str]) -> None:
    from loaders.ops.retry import dismiss_command

    old = runs.start_run(_runs_dir(sandbox_env), "stocks_daily", "flatfiles", {})
    for day in ("2025-11-03", "2025-11-04", "2025-11-10"):
        old.add("failed", date=day, error="missing: HTTP 404")
    old.finish()
    assert dismiss_command(["stocks_daily"], dt.date(2025, 11, 1), dt.date(2025, 11, 5), reason="gone") == 0
    left = runs.outstanding_failures(_runs_dir(sandbox_env))
    assert [f["date"] for f in left] == ["2025-11-10"]


@pytest.mark.parametrize(
    ("day", "pub", "hours_after_close", "expected"),
    [
        ("2025-09-30", Publication(dt.date(2025, 10, 1), dt.date(2025, 12, 19)), 1, "not_published"),
        ("2025-12-22", Publication(dt.date(2025, 10, 1), dt.date(2025, 12, 19)), 1, "pending"),
        ("2025-12-22", Publication(dt.date(2025, 10, 1), dt.date(2025, 12, 19)), 30, "not_published"),
        ("2025-11-05", Publication(dt.date(2025, 10, 1), dt.date(2025, 12, 19)), 1, "pending"),
        ("2025-11-05", Publication(dt.date(2025, 10, 1), dt.date(2025, 12, 19)), 30, "failed"),
        ("2025-11-05", Publication(None, None), 30, "not_published"),
        ("2025-11-05", Publication(None, None, known=False), 1, "pending"),
        ("2025-11-05", Publication(None, None, known=False), 30, "failed"),
    ],
)
def test_how_a_session_without_a_file_is_reported(
    day: str, pub: Publication, hours_after_close: int, expected: str
) -> None:
    when = session_bounds(day)[1] + dt.timedelta(hours=hours_after_close)
    assert unpublished_status(dt.date.fromisoformat(day), pub, when, 24.0) == expected


def test_refresh_daily_stays_green_while_files_are_pending_and_asks_for_them_again(
    sandbox: Any, sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.config import load_settings
    from loaders.ops import refresh

    newest = sandbox.market.today
    following = sessions(newest + dt.timedelta(days=1), newest + dt.timedelta(days=7))[0]
    _now_at(monkeypatch, session_bounds(following)[1] + dt.timedelta(hours=3))
    assert _ingest("stocks_daily", sessions(newest - dt.timedelta(days=6), newest)[0], following) == 0
    # an older session still pending (published late, inside the range) widens the refresh's window
    older = runs.start_run(_runs_dir(sandbox_env), "stocks_daily", "flatfiles", {}, announce=False)
    older.add(runs.PENDING, date="2025-11-05", key="us_stocks_sip/day_aggs_v1/2025/11/2025-11-05.csv.gz")
    older.finish()
    assert refresh.ingest_window(load_settings(), "stocks_daily") == (dt.date(2025, 11, 5), newest)
    assert refresh.refresh_command("daily", ["stocks_daily"], build=False, validate=False) == refresh.EXIT_OK
    assert _items(sandbox_env, "stocks_daily")["2025-11-05"] == "loaded"
    # the session after the newest file stays pending until it is published or overdue
    pending = runs.pending_items(_runs_dir(sandbox_env), "stocks_daily")
    assert [p["date"] for p in pending] == [following.isoformat()]


def test_a_pending_session_is_not_a_gap_until_its_due_time(
    sandbox_env: dict[str, str], faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.config import load_settings
    from loaders.ops import gaps

    days = sessions("2025-11-03", "2025-11-07")
    faults.update(missing_days=[days[2].isoformat()])
    _now_at(monkeypatch, session_bounds(days[2])[1] + dt.timedelta(hours=2))
    assert _ingest("stocks_daily", days[0], days[-1]) == 0
    settings = load_settings()
    due = session_bounds(days[2])[1] + dt.timedelta(hours=24)
    found = gaps.detect(settings, "stocks_daily", downstream=False)
    assert (found.missing_sessions, found.pending) == ([days[2]], [])  # the real clock: long overdue
    assert gaps.pending_sessions(settings, "stocks_daily", now=due - dt.timedelta(hours=1)) == {days[2]}
    assert gaps.pending_sessions(settings, "stocks_daily", now=due + dt.timedelta(hours=1)) == set()
    original = gaps.pending_sessions
    monkeypatch.setattr(
        gaps, "pending_sessions", lambda s, d: original(s, d, now=due - dt.timedelta(hours=1))
    )
    found = gaps.detect(settings, "stocks_daily", downstream=False)
    assert (found.missing_sessions, found.pending) == ([], [days[2]])
    assert found.to_json()["pending"] == [days[2].isoformat()]
