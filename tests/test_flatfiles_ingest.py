"""`quantmini ingest` for flat files against the sandbox S3 endpoint: idempotent, resumable, fault tolerant."""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from loaders import runs
from loaders.calendar import sessions
from loaders.config import load_settings
from loaders.flatfiles import LandedFile, Outcomes
from loaders.flatfiles import settings as ff_settings
from loaders.flatfiles.commands import EXIT_BUSY, EXIT_FAILED, ingest_command, load_files, make_pipeline
from loaders.flatfiles.settings import DATASETS
from loaders.sandbox import flatfiles as sandbox_files

DAYS = sessions("2025-10-01", "2025-10-08")  # 6 sessions, all served by the sandbox from the start
COLUMNS = (
    "ticker, volume, open, high, low, close, epoch_us(window_start), transactions, _source_key, _source_etag"
)


def _ingest(dataset: str, start: dt.date, end: dt.date, *, full: bool = False, concurrent: int = 3) -> int:
    return ingest_command(dataset, start, end, incremental=not full, max_concurrent=concurrent)


def _data(env: dict[str, str]) -> Path:
    return Path(env["QM_DATA_DIR"])


def _rows(data_dir: Path, dataset: str, with_load_id: bool = False) -> list[tuple[Any, ...]]:
    """Every bronze row, read with plain DuckDB as a user would."""
    glob = data_dir / "bronze" / dataset / "*" / "*.parquet"
    cols = COLUMNS + (", _dlt_load_id" if with_load_id else "")
    sql = f"select {cols}, session_date from read_parquet('{glob}', hive_partitioning = true) order by all"
    return duckdb.sql(sql).fetchall()


def _market_rows(market: Any, dataset: str, days: list[dt.date]) -> list[tuple[Any, ...]]:
    out = []
    for day in days:
        table = sandbox_files.table_for(market, dataset, day)
        for r in table.to_pylist():
            out.append(
                (
                    r["ticker"],
                    float(r["volume"]),
                    r["open"],
                    r["high"],
                    r["low"],
                    r["close"],
                    r["window_start"] // 1000,
                    r["transactions"],
                    day,
                )
            )
    return sorted(out)


def _files(data_dir: Path, dataset: str) -> dict[str, tuple[int, int]]:
    """Bronze file name -> (inode, mtime_ns): proves a session was left untouched."""
    return {
        str(p.relative_to(data_dir)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted((data_dir / "bronze" / dataset).glob("*/*.parquet"))
    }


def _sessions_of(files: dict[str, Any]) -> set[str]:
    return {name.split("session_date=")[1].split("/")[0] for name in files}


def _last_items(data_dir: Path, dataset: str) -> dict[str, str]:
    run = runs.last_run(data_dir / "runs", dataset)
    assert run is not None
    return {item["date"]: item["status"] for item in run["items"]}


def test_initial_load_matches_the_market_and_keeps_secrets_out(
    sandbox: Any, sandbox_env: dict[str, str]
) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == 0
    rows = _rows(data, "stocks_daily")
    assert [r[:8] + (r[-1],) for r in rows] == _market_rows(sandbox.market, "stocks_daily", DAYS)
    assert {r[8] for r in rows} == {DATASETS["stocks_daily"].key(d) for d in DAYS}
    assert sorted(_sessions_of(_files(data, "stocks_daily"))) == [d.isoformat() for d in DAYS]
    assert set(_last_items(data, "stocks_daily").values()) == {"loaded"}
    landing = data / "landing" / "flatfiles" / DATASETS["stocks_daily"].key(DAYS[0])
    assert landing.read_bytes() == sandbox_files.render_file(sandbox.market, "stocks_daily", DAYS[0])
    secret = sandbox_env["POLYGON_S3_SECRET_ACCESS_KEY"]
    for path in data.rglob("*"):
        assert secret not in str(path)
        if path.is_file() and path.suffix in {".json", ".jsonl", ".yaml", ".toml", ".pickle"}:
            assert secret.encode() not in path.read_bytes(), path


def test_a_month_of_keys_costs_one_listing_not_a_head_each(sandbox: Any, sandbox_env: dict[str, str]) -> None:
    # what is published: the year folders, 2025's months, the first and the last month's files (2025/10/
    # is the first month, so the wanted keys' month is listed once, by this probe)
    probe = 4
    before = sandbox.s3_app.requests
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == 0
    assert sandbox.s3_app.requests - before == probe + len(DAYS)  # and one GET per file
    before = sandbox.s3_app.requests
    assert _ingest("stocks_daily", DAYS[0], DAYS[1]) == 0  # two keys: no HEAD, their month is listed
    assert sandbox.s3_app.requests - before == probe
    assert set(_last_items(_data(sandbox_env), "stocks_daily").values()) == {"skipped"}
    before = sandbox.s3_app.requests
    assert _ingest("stocks_daily", dt.date(2025, 11, 3), dt.date(2025, 11, 4)) == 0  # a HEAD each
    assert sandbox.s3_app.requests - before == probe + 2 + 2


def test_a_refused_listing_falls_back_to_a_head_per_key() -> None:
    from botocore.exceptions import ClientError

    from loaders.flatfiles.commands import _remote_all
    from loaders.flatfiles.s3 import Listings

    keys = [DATASETS["stocks_daily"].key(d) for d in DAYS[:4]]

    class Client:
        heads: list[str] = []

        def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
            error = {"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}
            raise ClientError(error, "ListObjectsV2")

        def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
            self.heads.append(Key)
            if Key == keys[1]:
                error = {"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}
                raise ClientError(error, "HeadObject")
            return {"ETag": '"abc"', "ContentLength": 10}

    client = Client()
    remotes = _remote_all(Listings(client, "flatfiles"), keys, workers=2)
    assert sorted(client.heads) == sorted(keys)
    assert [type(remotes[k]).__name__ for k in keys] == [
        "RemoteFile",
        "MissingFile",
        "RemoteFile",
        "RemoteFile",
    ]
    assert remotes[keys[0]].etag == "abc"  # type: ignore[union-attr]


def test_rerun_changes_nothing(sandbox_env: dict[str, str]) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    before, rows = _files(data, "stocks_daily"), _rows(data, "stocks_daily", with_load_id=True)
    landing = {p: p.stat().st_mtime_ns for p in (data / "landing").rglob("*.csv.gz")}
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    assert _files(data, "stocks_daily") == before
    assert _rows(data, "stocks_daily", with_load_id=True) == rows
    assert {p: p.stat().st_mtime_ns for p in landing} == landing  # nothing downloaded again
    assert set(_last_items(data, "stocks_daily").values()) == {"skipped"}


def test_extending_the_range_loads_only_the_new_sessions(sandbox: Any, sandbox_env: dict[str, str]) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    before = _files(data, "stocks_daily")
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == 0
    after = _files(data, "stocks_daily")
    assert {k: v for k, v in after.items() if k in before} == before
    assert _sessions_of({k: v for k, v in after.items() if k not in before}) == {
        d.isoformat() for d in DAYS[3:]
    }
    items = _last_items(data, "stocks_daily")
    assert [items[d.isoformat()] for d in DAYS] == ["skipped"] * 3 + ["loaded"] * 3
    rows = _rows(data, "stocks_daily")
    assert [r[:8] + (r[-1],) for r in rows] == _market_rows(sandbox.market, "stocks_daily", DAYS)


def test_lost_pipeline_state_falls_back_to_the_etags_in_bronze(
    sandbox_env: dict[str, str], faults: Any
) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    before = _files(data, "stocks_daily")
    shutil.rmtree(data / "dlt")
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    assert set(_last_items(data, "stocks_daily").values()) == {"skipped"}
    assert _files(data, "stocks_daily") == before
    faults.update(republished=[("stocks_daily", DAYS[2].isoformat())])
    shutil.rmtree(data / "dlt")
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    assert _last_items(data, "stocks_daily")[DAYS[2].isoformat()] == "loaded"


def test_full_on_a_sub_range_replaces_exactly_those_sessions(sandbox_env: dict[str, str]) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == 0
    before, rows = _files(data, "stocks_daily"), _rows(data, "stocks_daily")
    assert _ingest("stocks_daily", DAYS[2], DAYS[3], full=True) == 0
    after = _files(data, "stocks_daily")
    replaced = {d.isoformat() for d in DAYS[2:4]}
    assert {k: v for k, v in after.items() if _sessions_of({k: v}) & replaced}.keys().isdisjoint(before)
    assert {k: v for k, v in after.items() if not _sessions_of({k: v}) & replaced} == {
        k: v for k, v in before.items() if not _sessions_of({k: v}) & replaced
    }
    assert _rows(data, "stocks_daily") == rows  # same rows, no duplicates
    assert set(_last_items(data, "stocks_daily").values()) == {"loaded"}


def test_deleted_partition_is_backfilled(sandbox_env: dict[str, str]) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == 0
    rows = _rows(data, "stocks_daily")
    shutil.rmtree(data / "bronze" / "stocks_daily" / f"session_date={DAYS[1]}")
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == 0
    items = _last_items(data, "stocks_daily")
    assert [d for d, s in items.items() if s == "loaded"] == [DAYS[1].isoformat()]
    assert _rows(data, "stocks_daily") == rows


def test_republished_file_is_reloaded(sandbox: Any, sandbox_env: dict[str, str], faults: Any) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    old_rows, before = _rows(data, "stocks_daily"), _files(data, "stocks_daily")
    faults.update(republished=[("stocks_daily", DAYS[1].isoformat())])
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    items = _last_items(data, "stocks_daily")
    assert items == {
        DAYS[0].isoformat(): "skipped",
        DAYS[1].isoformat(): "loaded",
        DAYS[2].isoformat(): "skipped",
    }
    new_rows = _rows(data, "stocks_daily")
    changed = set(new_rows) ^ set(old_rows)
    assert {r[-1] for r in changed} == {DAYS[1]}
    assert len(new_rows) == len(old_rows)
    expected = sandbox_files.republished(sandbox.market.stock_day_aggs(DAYS[1]))
    assert sorted(r[5] for r in new_rows if r[-1] == DAYS[1]) == sorted(expected.column("close").to_pylist())
    assert {r[9] for r in new_rows if r[-1] == DAYS[1]} != {r[9] for r in old_rows if r[-1] == DAYS[1]}
    untouched = {k: v for k, v in before.items() if DAYS[1].isoformat() not in k}
    assert {k: v for k, v in _files(data, "stocks_daily").items() if k in untouched} == untouched
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0  # and the new version is now up to date
    assert set(_last_items(data, "stocks_daily").values()) == {"skipped"}


def test_server_errors_resets_and_truncated_bodies_are_survived(
    sandbox: Any, sandbox_env: dict[str, str], faults: Any
) -> None:
    data = _data(sandbox_env)
    faults.update(error_rate=0.3, truncate_rate=0.3)
    # one request at a time: the seeded fault draws then meet the same requests on every run (with
    # threads, 6 attempts at these rates still lose a file now and then)
    assert _ingest("stocks_minute", DAYS[0], DAYS[2], concurrent=1) == 0
    faults.reset()
    rows = _rows(data, "stocks_minute")
    assert [r[:8] + (r[-1],) for r in rows] == _market_rows(sandbox.market, "stocks_minute", DAYS[:3])
    assert sandbox.s3_app.requests > 2 * 3  # the faults really happened and were retried


def test_slowdown_throttling_is_retried(sandbox: Any, sandbox_env: dict[str, str], faults: Any) -> None:
    data = _data(sandbox_env)
    faults.update(rate_limit=8.0)
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1], concurrent=6) == 0
    assert len(_sessions_of(_files(data, "stocks_daily"))) == len(DAYS)


def test_missing_file_is_recorded_and_the_run_goes_on(sandbox_env: dict[str, str], faults: Any) -> None:
    data = _data(sandbox_env)
    faults.update(missing_days=[DAYS[1].isoformat()])
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == EXIT_FAILED
    items = _last_items(data, "stocks_daily")
    assert items == {
        DAYS[0].isoformat(): "loaded",
        DAYS[1].isoformat(): "failed",
        DAYS[2].isoformat(): "loaded",
    }
    failure = runs.outstanding_failures(data / "runs", "stocks_daily")
    assert [f["date"] for f in failure] == [DAYS[1].isoformat()]
    assert "404" in failure[0]["error"]
    faults.reset()
    assert _ingest("stocks_daily", DAYS[0], DAYS[2]) == 0
    assert _last_items(data, "stocks_daily")[DAYS[1].isoformat()] == "loaded"
    assert runs.outstanding_failures(data / "runs", "stocks_daily") == []


def test_bad_file_is_rejected_with_file_line_and_field_and_bronze_is_unchanged(
    sandbox: Any, sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_minute", DAYS[0], DAYS[1]) == 0
    before, rows = _files(data, "stocks_minute"), _rows(data, "stocks_minute", with_load_id=True)
    # small batches: some of the bad file's rows reach dlt before the bad line is met
    import loaders.flatfiles as source

    monkeypatch.setattr(
        source, "read_flatfile", functools.partial(source.read_flatfile, block_size=32 << 10, batch_rows=1000)
    )
    settings = load_settings()
    ds = DATASETS["stocks_minute"]
    bad_key = ds.key(DAYS[1])
    bad = data / "bad.csv.gz"
    lines = (
        gzip.decompress(sandbox_files.render_file(sandbox.market, "stocks_minute", DAYS[1]))
        .decode()
        .splitlines()
    )
    lines[3000] = lines[3000].split(",", 1)[0] + ",12,abc," + lines[3000].split(",", 3)[3]
    bad.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    good = data / "good.csv.gz"
    good.write_bytes(sandbox_files.render_file(sandbox.market, "stocks_minute", DAYS[2]))
    outcomes = Outcomes()
    files = [
        LandedFile(bad_key, DAYS[1], "etag-bad", bad.stat().st_size, bad),
        LandedFile(ds.key(DAYS[2]), DAYS[2], "etag-good", good.stat().st_size, good),
    ]
    commits, error = load_files(make_pipeline(ds, settings), ds, settings, files, outcomes)
    assert error == ""
    rejected = outcomes.by_key[bad_key]
    assert rejected.status == "rejected"
    assert f"{bad_key}, line 3001, field 'open'" in rejected.error
    assert [(c.partition, c.committed) for c in commits] == [
        (f"session_date={DAYS[1]}", False),
        (f"session_date={DAYS[2]}", True),
    ]
    after = _files(data, "stocks_minute")
    assert {k: v for k, v in after.items() if k in before} == before  # the loaded sessions did not change
    assert [r for r in _rows(data, "stocks_minute", with_load_id=True) if r[-1] != DAYS[2]] == rows
    assert sum(1 for r in _rows(data, "stocks_minute") if r[-1] == DAYS[2]) == len(
        sandbox.market.stock_minute_aggs(DAYS[2])
    )


def test_rejected_landing_file_fails_its_date_and_is_fetched_again_next_time(
    sandbox: Any, sandbox_env: dict[str, str]
) -> None:
    data = _data(sandbox_env)
    key = DATASETS["stocks_daily"].key(DAYS[0])
    assert _ingest("stocks_daily", DAYS[0], DAYS[0]) == 0
    shutil.rmtree(data / "bronze" / "stocks_daily" / f"session_date={DAYS[0]}")
    path = data / "landing" / "flatfiles" / key
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2].ljust(size, b"\0"))  # same size, broken gzip
    assert _ingest("stocks_daily", DAYS[0], DAYS[1]) == EXIT_FAILED
    run = runs.last_run(data / "runs", "stocks_daily")
    item = next(i for i in run["items"] if i["date"] == DAYS[0].isoformat())
    assert item["status"] == "rejected" and key in item["error"] and "gzip" in item["error"]
    assert not (data / "bronze" / "stocks_daily" / f"session_date={DAYS[0]}").exists()
    assert _ingest("stocks_daily", DAYS[0], DAYS[1]) == 0
    assert path.read_bytes() == sandbox_files.render_file(sandbox.market, "stocks_daily", DAYS[0])


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Rows of the job file handed to every call of `module.name` (the destination's staging functions)."""
    calls: list[int] = []
    original = getattr(module, name)

    def wrapper(root: Any, dataset: str, path: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(pq.read_metadata(path).num_rows)
        return original(root, dataset, path, *args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_small_files_share_dlt_jobs_and_land_one_file_per_session(
    sandbox: Any, sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.bronze import staging

    data = _data(sandbox_env)
    staged = _count_calls(monkeypatch, staging, "stage_file")
    manifests = _count_calls(monkeypatch, staging, "stage_manifest")
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1]) == 0
    assert (len(staged), len(manifests)) == (1, 1)  # six sessions, one data job and one manifest job
    files = sorted((data / "bronze" / "stocks_daily").glob("*/*.parquet"))
    assert len(files) == len(DAYS)
    for path in files:
        table = pq.read_table(path, partitioning=None)
        key = DATASETS["stocks_daily"].key(dt.date.fromisoformat(path.parent.name.split("=")[1]))
        for column in ("_source_key", "_source_etag", "_dlt_load_id"):
            assert len(table.column(column).chunk(0).dictionary) == 1, (path, column)  # compact per file
        assert table.column("_source_key").unique().to_pylist() == [key]
        assert pq.read_metadata(path).row_group(0).column(8).statistics.min == key
    rows = _rows(data, "stocks_daily")
    assert [r[:8] + (r[-1],) for r in rows] == _market_rows(sandbox.market, "stocks_daily", DAYS)
    # a second group size: more jobs, the same bronze rows
    monkeypatch.setattr(ff_settings, "GROUP_ROWS", 22)
    staged.clear()
    assert _ingest("stocks_daily", DAYS[0], DAYS[-1], full=True) == 0
    assert len(staged) == len(DAYS) // 2  # 10 or 11 bars a day: two sessions per extract file
    assert _rows(data, "stocks_daily") == rows


def test_rejected_small_file_never_reaches_dlt_and_its_group_still_loads(
    sandbox: Any, sandbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.bronze import staging

    data = _data(sandbox_env)
    ds = DATASETS["stocks_daily"]
    staged = _count_calls(monkeypatch, staging, "stage_file")
    files = []
    for day in DAYS[:3]:
        path = data / f"{day}.csv.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        body = sandbox_files.render_file(sandbox.market, "stocks_daily", day)
        if day == DAYS[1]:
            lines = gzip.decompress(body).decode().splitlines()
            lines[5] = lines[5].rsplit(",", 1)[0] + ",many"
            body = gzip.compress(("\n".join(lines) + "\n").encode())
        path.write_bytes(body)
        files.append(LandedFile(ds.key(day), day, f"etag-{day}", path.stat().st_size, path))
    settings = load_settings()
    outcomes = Outcomes()
    commits, error = load_files(make_pipeline(ds, settings), ds, settings, files, outcomes)
    assert error == ""
    assert f"{ds.key(DAYS[1])}, line 6, field 'transactions'" in outcomes.by_key[ds.key(DAYS[1])].error
    assert [(c.partition, c.committed) for c in commits] == [
        (f"session_date={DAYS[0]}", True),
        (f"session_date={DAYS[2]}", True),
    ]
    good = sum(len(sandbox.market.stock_day_aggs(d)) for d in (DAYS[0], DAYS[2]))
    assert staged == [good]  # one job holding the good files' rows only
    assert {r[-1] for r in _rows(data, "stocks_daily")} == {DAYS[0], DAYS[2]}


_KILLER = """
import os, sys
import loaders.bronze.staging as staging
import loaders.flatfiles as source
import loaders.flatfiles.settings as ff
point, after, layout = sys.argv[1], int(sys.argv[2]), sys.argv[5]
if layout == "streamed":  # every file its own extract files, hard-linked into bronze
    ff.SMALL_FILE_ROWS = 0
else:  # small files gathered two by two: two extract files, each split into its sessions
    ff.GROUP_ROWS = 9_000
calls = {"n": 0}
def kill_after(fn):
    def wrapper(*a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            os._exit(9)  # like SIGKILL: no cleanup, no finally blocks
        return fn(*a, **k)
    return wrapper
if point == "extract":
    original = source.read_flatfile
    def reader(*a, **k):
        for i, table in enumerate(original(*a, **k)):
            calls["n"] += 1
            if calls["n"] > after:
                os._exit(9)
            yield table
    source.read_flatfile = reader
elif point == "load":
    staging.stage_file = kill_after(staging.stage_file)
else:
    staging.swap_in = kill_after(staging.swap_in)
from loaders.flatfiles.commands import ingest_command
import datetime as dt
sys.exit(ingest_command("stocks_minute", dt.date.fromisoformat(sys.argv[3]), dt.date.fromisoformat(sys.argv[4]), incremental=True, max_concurrent=2))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("layout", "point", "after"),
    [
        ("streamed", "extract", 2),
        ("streamed", "load", 2),
        ("streamed", "commit", 2),
        ("grouped", "extract", 2),
        ("grouped", "load", 1),
        ("grouped", "commit", 2),
    ],
)
def test_run_killed_midway_then_rerun_gives_exactly_the_rows_of_a_clean_load(
    sandbox: Any, sandbox_env: dict[str, str], layout: str, point: str, after: int
) -> None:
    data = _data(sandbox_env)
    days = DAYS[:4]  # 4,290 minute bars a day in the test market
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _KILLER,
            point,
            str(after),
            days[0].isoformat(),
            days[-1].isoformat(),
            layout,
        ],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert len(_sessions_of(_files(data, "stocks_minute"))) < len(days)
    assert _ingest("stocks_minute", days[0], days[-1]) == 0
    clean = _clean_rows(sandbox_env, days)
    assert _rows(data, "stocks_minute") == clean
    assert not any((data / "bronze" / ".staging").rglob("*.parquet"))


def _clean_rows(env: dict[str, str], days: list[dt.date]) -> list[tuple[Any, ...]]:
    """The rows a clean, uninterrupted load of `days` gives, in a separate data dir."""
    clean_dir = Path(env["QM_DATA_DIR"]).parent / "clean"
    old = os.environ["QM_DATA_DIR"], os.environ["DLT_DATA_DIR"]
    os.environ["QM_DATA_DIR"], os.environ["DLT_DATA_DIR"] = str(clean_dir), str(clean_dir / "dlt")
    try:
        assert _ingest("stocks_minute", days[0], days[-1]) == 0
        return _rows(clean_dir, "stocks_minute")
    finally:
        os.environ["QM_DATA_DIR"], os.environ["DLT_DATA_DIR"] = old


def test_second_run_of_the_same_dataset_stops_with_a_clear_message(
    sandbox_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data = _data(sandbox_env)
    lock = data / "locks" / "stocks_daily.lock"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from filelock import FileLock; l = FileLock({str(lock)!r}); l.acquire(); print('held', flush=True); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert _ingest("stocks_daily", DAYS[0], DAYS[1]) == EXIT_BUSY
        assert "another `quantmini ingest -t stocks_daily` is running" in capsys.readouterr().err
        assert not (data / "bronze" / "stocks_daily").exists()
    finally:
        holder.communicate("\n", timeout=10)
    assert _ingest("stocks_daily", DAYS[0], DAYS[1]) == 0


@pytest.mark.slow
def test_different_datasets_load_in_parallel_processes(sandbox: Any, sandbox_env: dict[str, str]) -> None:
    data = _data(sandbox_env)
    days = DAYS[:2]
    parallel = ("stocks_daily", "options_daily")
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loaders.cli",
                "ingest",
                "-t",
                name,
                "-s",
                str(days[0]),
                "-e",
                str(days[-1]),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in parallel
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {out[-2000:]}"
    for name in parallel:
        rows = _rows(data, name)
        assert [r[:8] + (r[-1],) for r in rows] == _market_rows(sandbox.market, name, days), name
    assert all(r[0].startswith("O:") for r in _rows(data, "options_daily"))
    info = subprocess.run(
        [str(Path(sys.executable).parent / "dlt"), "pipeline", "quantmini_options_daily", "info"],
        env={**os.environ, "DLT_DATA_DIR": str(data / "dlt")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Found pipeline quantmini_options_daily" in info.stdout + info.stderr
    assert "options_daily with 2 table(s)" in info.stdout + info.stderr


def test_options_minute_loads_occ_tickers_within_the_session(
    sandbox: Any, sandbox_env: dict[str, str]
) -> None:
    data = _data(sandbox_env)
    assert _ingest("options_minute", DAYS[0], DAYS[0]) == 0
    rows = _rows(data, "options_minute")
    assert [r[:8] + (r[-1],) for r in rows] == _market_rows(sandbox.market, "options_minute", DAYS[:1])
    assert all(r[0].startswith("O:") for r in rows)


def test_without_a_start_date_the_run_continues_after_the_newest_session(sandbox_env: dict[str, str]) -> None:
    data = _data(sandbox_env)
    assert _ingest("stocks_daily", DAYS[0], DAYS[1]) == 0
    assert ingest_command("stocks_daily", None, DAYS[3], incremental=True, max_concurrent=2) == 0
    assert list(_last_items(data, "stocks_daily")) == [DAYS[2].isoformat(), DAYS[3].isoformat()]
    assert (
        ingest_command("stocks_daily", None, DAYS[3], incremental=True, max_concurrent=2) == 0
    )  # up to date
    assert len(runs.read_runs(data / "runs", "stocks_daily")) == 2
    assert ingest_command("stocks_daily", DAYS[3], DAYS[2], incremental=True, max_concurrent=2) == EXIT_BUSY


def test_an_ingest_process_never_imports_pandas(sandbox_env: dict[str, str]) -> None:
    """pyarrow imports pandas on its first conversion of a Python value (0.5 CPU-s per process,
    `loaders.flatfiles.arrays`): neither the small-file path nor the streamed large-file path may convert one,
    nor may dlt's state document (a new session changes the state). The first run of a data dir computes
    the session calendar's cache with pandas, once; the runs after it are measured."""

    def ingest(days: list[dt.date], stream: bool) -> list[str]:
        code = (
            "import datetime as dt, sys\n"
            "from loaders.flatfiles import settings as ff\n"
            "from loaders.flatfiles.commands import ingest_command\n"
            f"days = [dt.date.fromisoformat(d) for d in {[d.isoformat() for d in days]!r}]\n"
            "if %r:\n    ff.SMALL_FILE_ROWS, ff.INFLATE_IN_MEMORY_BYTES = 0, 0  # batches streamed, linked\n"
            "for dataset in ('stocks_daily', 'options_daily'):\n"
            "    assert ingest_command(dataset, days[0], days[-1], incremental=True, max_concurrent=2) == 0\n"
            "print('pandas' in sys.modules, 'pyarrow.dataset' in sys.modules)\n"
        ) % stream
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=os.environ.copy()
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout.split()[-2:]

    ingest(DAYS[:1], stream=False)  # fills the calendar cache and creates the pipelines
    assert ingest(DAYS[1:3], stream=False) == ["False", "False"], "pandas or pyarrow.dataset was imported"
    assert ingest(DAYS[3:4], stream=True) == ["False", "False"], "pandas or pyarrow.dataset was imported"
    loaded = {r[-1] for r in _rows(_data(sandbox_env), "options_daily")}
    assert loaded == set(DAYS[:4])
