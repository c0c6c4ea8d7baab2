"""A kill -9 at each on-disk phase of an ingest is repaired by the next ordinary run, with no manual step.

The runs are killed by `chaos.killer` (real code paths, only the death injected); the next plain
`quantmini ingest` must exit 0 and leave bronze equal to a clean load. The whole matrix of phases runs
in `make chaos`; these are the phases that once wedged a dataset or lost rows.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from loaders import bronze, runs
from loaders.calendar import sessions
from loaders.locks import lock_path

REPO = Path(__file__).resolve().parents[1]
DAYS = sessions("2025-10-01", "2025-10-08")


def quantmini(env: dict[str, str], *args: str, phase: str | None = None, after: int = 1) -> Any:
    """Run `quantmini <args>` in a child process, killed at `phase` when given."""
    prefix = ["-m", "chaos.killer", phase, str(after), "--"] if phase else ["-m", "loaders.cli"]
    return subprocess.run(
        [sys.executable, *prefix, *args],
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _rows(data_dir: Path, dataset: str, columns: str) -> list[tuple[Any, ...]]:
    glob = data_dir / "bronze" / dataset / "*" / "*.parquet"
    return duckdb.sql(
        f"select {columns} from read_parquet('{glob}', hive_partitioning = true) order by all"
    ).fetchall()


def _clean(
    env: dict[str, str], tmp_path: Path, dataset: str, columns: str, *args: str
) -> list[tuple[Any, ...]]:
    clean = tmp_path / "clean"
    result = quantmini({**env, "QM_DATA_DIR": str(clean), "DLT_DATA_DIR": str(clean / "dlt")}, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return _rows(clean, dataset, columns)


FLAT_COLUMNS = "ticker, volume, open, high, low, close, window_start, transactions, _source_key, session_date"
DAILY = ("ingest", "-t", "stocks_daily", "-s", DAYS[0].isoformat(), "-e", DAYS[-1].isoformat())


@pytest.mark.parametrize("phase", ["normalize-commit", "extract-commit", "parse"])
def test_kill_inside_dlt_steps_is_finished_by_the_next_run(
    sandbox: Any, sandbox_env: dict[str, str], tmp_path: Path, phase: str
) -> None:
    data = Path(sandbox_env["QM_DATA_DIR"])
    killed = quantmini(sandbox_env, *DAILY, phase=phase)
    assert killed.returncode == -9, killed.stderr[-3000:]
    pipeline_dir = data / "dlt" / "pipelines" / "quantmini_stocks_daily"
    if phase == "normalize-commit":  # the state that once failed every later run
        assert list((pipeline_dir / "normalize" / "extracted").iterdir())
        assert list((pipeline_dir / "load" / "normalized").iterdir())

    again = quantmini(sandbox_env, *DAILY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _rows(data, "stocks_daily", FLAT_COLUMNS) == _clean(
        sandbox_env, tmp_path, "stocks_daily", FLAT_COLUMNS, *DAILY
    )
    assert not list((pipeline_dir / "normalize" / "extracted").iterdir())
    assert not list((pipeline_dir / "load" / "normalized").iterdir())
    # no half-extracted package folder is left behind in dlt's normalize storage
    assert {p.name for p in (pipeline_dir / "normalize").iterdir() if p.is_dir()} == {"extracted"}
    assert not any((data / "bronze" / ".staging").rglob("*.parquet"))


NEWS_COLUMNS = "id, title, published_utc, published_date"


def test_rest_merge_killed_between_its_renames_loses_no_row(
    sandbox: Any, sandbox_env: dict[str, str], tmp_path: Path
) -> None:
    data = Path(sandbox_env["QM_DATA_DIR"])
    first = quantmini(sandbox_env, "ingest", "-t", "news", "-s", "2025-10-01", "-e", "2025-11-10")
    assert first.returncode == 0, first.stderr[-3000:]
    # The next forward run re-merges the cursor's last day. A merge leaves a partition alone when every
    # row sent is already stored, so one stored row of that day is dropped first: the re-merge must then
    # rewrite the partition, and is killed after the old partition went to trash.
    last_day = sorted(p for p in (data / "bronze" / "news").iterdir() if "=" in p.name)[-1]
    stored = sorted(last_day.glob("*.parquet"))[-1]
    table = pq.read_table(stored)
    assert table.num_rows > 0
    pq.write_table(table.slice(0, table.num_rows - 1), stored, compression="zstd")
    killed = quantmini(sandbox_env, "ingest", "-t", "news", "-e", "2025-12-10", phase="swap")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert list((data / "bronze" / ".trash" / "news").iterdir())

    again = quantmini(sandbox_env, "ingest", "-t", "news", "-e", "2025-12-10")
    assert again.returncode == 0, again.stderr[-3000:]
    clean = _clean(
        sandbox_env,
        tmp_path,
        "news",
        NEWS_COLUMNS,
        "ingest",
        "-t",
        "news",
        "-s",
        "2025-10-01",
        "-e",
        "2025-12-10",
    )
    assert _rows(data, "news", NEWS_COLUMNS) == clean
    assert "interrupted bronze write(s) finished" in again.stderr
    assert not any((data / "bronze" / ".staging" / "news").iterdir())
    assert not (data / "bronze" / ".trash" / "news").exists() or not any(
        (data / "bronze" / ".trash" / "news").iterdir()
    )


def test_rest_ingest_of_a_locked_dataset_stops_with_a_clear_message(
    sandbox: Any, sandbox_env: dict[str, str]
) -> None:
    from filelock import FileLock

    data = Path(sandbox_env["QM_DATA_DIR"])
    path = lock_path(data, "news")
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from filelock import FileLock; l = FileLock({str(path)!r}); l.acquire(); print('held', flush=True); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = quantmini(sandbox_env, "ingest", "-t", "news", "-s", "2025-10-01", "-e", "2025-10-10")
        assert busy.returncode == 2, busy.stderr[-3000:]
        assert "another `quantmini ingest -t news` is running" in busy.stderr
        assert not (data / "bronze" / "news").exists()
    finally:
        holder.communicate("\n", timeout=10)
    assert FileLock(str(path)).acquire(timeout=1)


def _table(n: int, day: str) -> Any:
    import pyarrow as pa

    return pa.table(
        {"id": [f"k{i}" for i in range(n)], "v": list(range(n)), "d": [dt.date.fromisoformat(day)] * n}
    )


def test_orphan_staging_of_an_uncommitted_write_is_removed_and_bronze_kept(tmp_path: Path) -> None:
    bronze.merge_partitions(tmp_path, "ds", _table(3, "2025-01-02"), "d", "id")
    orphan = tmp_path / bronze.STAGING / "ds" / "20250101T000000-deadbeef" / "d=2025-01-02"
    orphan.mkdir(parents=True)
    (orphan / "part-0.parquet").write_bytes(b"half a file")
    bronze.merge_partitions(tmp_path, "ds", _table(1, "2025-01-03"), "d", "id")
    assert not (tmp_path / bronze.STAGING / "ds" / "20250101T000000-deadbeef").exists()
    assert duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/ds/*/*.parquet')").fetchone() == (3,)


def test_a_killed_run_shows_as_interrupted_until_the_next_run_finishes(
    sandbox: Any, sandbox_env: dict[str, str]
) -> None:
    from loaders.config import load_settings
    from loaders.ops.retry import plan_retries

    data = Path(sandbox_env["QM_DATA_DIR"])
    killed = quantmini(sandbox_env, *DAILY, phase="load-job")
    assert killed.returncode == -9, killed.stderr[-3000:]
    last = runs.last_run(data / "runs", "stocks_daily")
    assert last is not None and last["status"] == "interrupted"
    plans = plan_retries(load_settings())
    assert [(p.dataset, p.ranges) for p in plans] == [("stocks_daily", [(DAYS[0], DAYS[-1])])]
    status = quantmini(sandbox_env, "status", "--json")
    assert '"interrupted' in status.stdout, status.stdout[-2000:]

    again = quantmini(sandbox_env, *DAILY)
    assert again.returncode == 0, again.stderr[-3000:]
    assert runs.last_run(data / "runs", "stocks_daily")["status"] == "ok"
    assert plan_retries(load_settings()) == []


def test_ledger_line_is_whole_or_absent_and_a_torn_line_does_not_spoil_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs.append(tmp_path, "ds", {"run_id": "a", "dataset": "ds", "started_at": "1", "status": "ok"})
    path = runs.ledger_path(tmp_path, "ds")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"run_id": "torn", "dat')  # a writer killed half-way
    runs.append(tmp_path, "ds", {"run_id": "b", "dataset": "ds", "started_at": "2", "status": "ok"})
    assert [r["run_id"] for r in runs.read_runs(tmp_path, "ds")] == ["a", "b"]

    size = path.stat().st_size
    real_write = os.write

    def full_disk(fd: int, data: bytes) -> int:
        real_write(fd, data[:5])  # part of the line reaches the disk, then ENOSPC
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError):
        runs.append(tmp_path, "ds", {"run_id": "c", "dataset": "ds", "started_at": "3", "status": "ok"})
    monkeypatch.undo()
    assert path.stat().st_size == size
    assert [r["run_id"] for r in runs.read_runs(tmp_path, "ds")] == ["a", "b"]


def test_an_unwritable_data_dir_gives_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {"QM_DATA_DIR": str(blocker / "data"), "DLT_DATA_DIR": str(blocker / "data" / "dlt")}
    for dataset in ("stocks_daily", "news"):
        result = quantmini(env, "ingest", "-t", dataset, "-s", "2025-10-01", "-e", "2025-10-02")
        assert result.returncode == 1, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and "│" not in result.stderr
        assert "error: cannot write" in result.stderr and "set QM_DATA_DIR to a folder" in result.stderr


def test_storage_errors_are_found_inside_dlt_exceptions_and_other_errors_are_not() -> None:
    import errno

    from loaders.storage_errors import describe, storage_error

    full = OSError(errno.ENOSPC, "No space left on device", "/data/bronze/x.parquet")
    try:
        try:
            raise full
        except OSError as exc:
            raise RuntimeError("load step failed") from exc
    except RuntimeError as wrapped:
        assert storage_error(wrapped) is full
    assert "the disk holding it is full" in describe(full) and "/data/bronze/x.parquet" in describe(full)
    assert storage_error(FileNotFoundError(errno.ENOENT, "gone")) is None
    assert storage_error(ValueError("bad row")) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only tmpfs needs root")
def test_a_read_only_data_dir_gives_one_clear_line(tmp_path: Path) -> None:
    mount = tmp_path / "ro"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"mount not permitted here: {done.stderr.decode().strip()}")
    try:
        env = {"QM_DATA_DIR": str(mount / "data"), "DLT_DATA_DIR": str(mount / "data" / "dlt")}
        result = quantmini(env, "ingest", "-t", "stocks_daily", "-s", "2025-10-01", "-e", "2025-10-02")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "read-only file system: set QM_DATA_DIR to a writable folder" in result.stderr
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_run_that_failed_before_any_date_is_an_outstanding_failure(tmp_path: Path) -> None:
    record = {
        "dataset": "stocks_daily",
        "kind": "flatfiles",
        "args": {"start": "2025-10-01", "end": "2025-10-08"},
    }
    runs.append(
        tmp_path,
        "stocks_daily",
        {**record, "run_id": "a", "started_at": "1", "status": "failed", "error": "boom"},
    )
    [item] = runs.outstanding_failures(tmp_path)
    assert item["key"] == "failed run" and item["error"] == "boom"
    runs.append(
        tmp_path, "stocks_daily", {**record, "run_id": "b", "started_at": "2", "status": "ok", "items": []}
    )
    assert runs.outstanding_failures(tmp_path) == []
