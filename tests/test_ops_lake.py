"""`quantmini lake pull|push` against a local S3 server (moto in server mode, real HTTP through boto3).

The scenarios a scheduled runner goes through: the first push of a new lake, a pull onto an empty disk,
a push that sends only what changed (deletions included), a pull that removes what the lake removed but
keeps files that were only ever local, an interrupted pull that leaves the lake usable, and the pushes
that must be refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from test_ops_support import write_bronze

from loaders.config import load_settings
from loaders.ops import lake

BUCKET = "quantmini-lake-test"
DAYS = [dt.date(2025, 1, 2), dt.date(2025, 1, 3), dt.date(2025, 1, 6)]


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def lake_env(s3_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A fresh prefix per test in one bucket, with the lake settings in the environment."""
    client = boto3.client(
        "s3", endpoint_url=s3_url, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET)
    prefix = f"lakes/{request.node.name}"
    monkeypatch.setenv("QM_LAKE_S3_ENDPOINT", s3_url)
    monkeypatch.setenv("QM_LAKE_S3_BUCKET", BUCKET)
    monkeypatch.setenv("QM_LAKE_S3_PREFIX", prefix)
    monkeypatch.setenv("QM_LAKE_S3_ACCESS_KEY_ID", "lake-key")
    monkeypatch.setenv("QM_LAKE_S3_SECRET_ACCESS_KEY", "lake-secret")
    return prefix


def _use(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QM_DATA_DIR", str(data_dir))


def _tree(data_dir: Path) -> dict[str, str]:
    return {
        p.relative_to(data_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(data_dir.rglob("*"))
        if p.is_file() and not p.relative_to(data_dir).as_posix().startswith(".lake/")
    }


def _make_lake(data_dir: Path) -> None:
    write_bronze(data_dir, "stocks_daily", DAYS)
    (data_dir / "quantmini.duckdb").write_bytes(os.urandom(50_000))
    state = data_dir / "dlt" / "pipelines" / "quantmini_stocks_daily" / "state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"last_session": "2025-01-06"}))
    (state.parent / "load" / "normalized").mkdir(parents=True)  # dlt fails when these are missing
    (data_dir / "runs").mkdir()
    (data_dir / "runs" / "stocks_daily.jsonl").write_text('{"run_id": "r1"}\n')
    (data_dir / "gold" / "qlib" / "calendars").mkdir(parents=True)
    (data_dir / "gold" / "qlib" / "calendars" / "day.txt").write_text("\n".join(map(str, DAYS)) + "\n")
    # scratch space and re-downloadable files stay out of the lake
    for scratch in (
        "landing/flatfiles/x.csv.gz",
        "dbt/target/manifest.json",
        ".refresh.lock",
        "bronze/.staging/a",
    ):
        (data_dir / scratch).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / scratch).write_bytes(b"scratch")


def _push(**kwargs: object) -> lake.SyncResult:
    return lake.push(load_settings(), lake.load_lake_settings(), **kwargs)


def _pull(**kwargs: object) -> lake.SyncResult:
    return lake.pull(load_settings(), lake.load_lake_settings(), **kwargs)


def test_push_then_pull_onto_an_empty_disk_and_only_changes_move(
    lake_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "runner-1", tmp_path / "runner-2"
    _make_lake(first)
    _use(second, monkeypatch)
    pulled = _pull()  # a bucket with no lake yet: nothing to do, not an error
    assert pulled.files == 0 and "no lake yet" in pulled.notes[0]

    _use(first, monkeypatch)
    pushed = _push()
    synced = {p: h for p, h in _tree(first).items() if lake.synced(lake.PurePosixPath(p))}
    assert pushed.generation == 1 and pushed.files == len(synced) == 7
    assert not any(
        p.startswith(("landing/", "dbt/", "bronze/.staging")) or p.endswith(".lock") for p in synced
    )

    _use(second, monkeypatch)
    pulled = _pull()
    assert (pulled.generation, pulled.transferred, pulled.deleted) == (1, 7, 0)
    assert _tree(second) == synced  # bronze, silver, dlt state, ledger and gold, byte for byte
    assert (second / "dlt" / "pipelines" / "quantmini_stocks_daily" / "load" / "normalized").is_dir()
    unchanged = _push()  # nothing changed since the pull: no new generation
    assert unchanged.generation == 1 and "nothing to push" in unchanged.notes[0]

    # the next run changes one file, adds a session and removes one (retention): only those move
    (second / "runs" / "stocks_daily.jsonl").write_text('{"run_id": "r1"}\n{"run_id": "r2"}\n')
    write_bronze(second, "stocks_daily", [dt.date(2025, 1, 7)])
    for old in (second / "bronze" / "stocks_daily" / "session_date=2025-01-02").iterdir():
        old.unlink()
    local_only = first / "notes.txt"
    local_only.write_text("never pushed")
    pushed = _push()
    assert (pushed.generation, pushed.transferred, pushed.deleted, pushed.unchanged) == (2, 2, 1, 5)
    assert _push(dry_run=True).transferred == 0  # pushing again finds nothing new

    _use(first, monkeypatch)
    pulled = _pull()
    assert (pulled.generation, pulled.transferred, pulled.deleted) == (2, 2, 1)
    assert not (first / "bronze" / "stocks_daily" / "session_date=2025-01-02").exists()
    assert local_only.read_text() == "never pushed"  # never in the lake, so never deleted by a pull
    local_only.unlink()
    assert {p: h for p, h in _tree(first).items() if lake.synced(lake.PurePosixPath(p))} == {
        p: h for p, h in _tree(second).items() if lake.synced(lake.PurePosixPath(p))
    }
    # objects no manifest refers to are deleted once the new manifest is in place
    client = lake.make_client(lake.load_lake_settings())
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{lake_env}/objects/")["KeyCount"]
    manifest = lake.read_manifest(client, lake.load_lake_settings())
    assert manifest is not None
    assert listed == len({e["sha256"] for e in manifest["files"].values()})


def test_an_interrupted_pull_leaves_the_lake_as_it_was(
    lake_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    _make_lake(source)
    _use(source, monkeypatch)
    _push()
    _use(target, monkeypatch)
    _pull()
    _use(source, monkeypatch)
    (source / "quantmini.duckdb").write_bytes(os.urandom(60_000))
    (source / "gold" / "qlib" / "calendars" / "day.txt").write_text("2025-01-02\n")
    _push()

    _use(target, monkeypatch)
    before = _tree(target)
    real_make_client = lake.make_client

    def flaky_make_client(settings: lake.LakeSettings) -> object:
        client = real_make_client(settings)
        real_download, calls = client.download_file, []

        def download_file(*args: object, **kwargs: object) -> None:
            calls.append(args)
            if len(calls) == 2:
                raise ConnectionResetError("connection reset by peer")
            real_download(*args, **kwargs)

        client.download_file = download_file
        return client

    monkeypatch.setattr(lake, "make_client", flaky_make_client)
    with pytest.raises(lake.LakeError, match="left as it was"):
        _pull()
    assert _tree(target) == before  # nothing half-replaced: the old lake is still whole
    monkeypatch.setattr(lake, "make_client", real_make_client)
    result = _pull()
    assert (result.transferred, result.generation) == (2, 2)
    assert (target / "gold" / "qlib" / "calendars" / "day.txt").read_text() == "2025-01-02\n"
    assert not (target / ".lake" / "incoming").exists()


def test_pushes_that_would_lose_another_runs_work_are_refused(
    lake_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, empty = tmp_path / "a", tmp_path / "b", tmp_path / "empty"
    _make_lake(a)
    _use(a, monkeypatch)
    _push()
    _use(b, monkeypatch)
    _pull()
    (b / "runs" / "stocks_daily.jsonl").write_text("b\n")
    _push()
    # `a` is still based on generation 1: its push would undo b's
    _use(a, monkeypatch)
    (a / "runs" / "stocks_daily.jsonl").write_text("a\n")
    with pytest.raises(
        lake.LakeError, match="generation 2 but this lake is based on generation 1"
    ) as refused:
        _push()
    assert refused.value.code == lake.EXIT_REFUSED
    # a runner that forgot to pull has no base: refused too, with the command to run
    empty.mkdir()
    _use(empty, monkeypatch)
    with pytest.raises(lake.LakeError, match="quantmini lake pull"):
        _push()
    assert lake.lake_command("push") == lake.EXIT_REFUSED
    _use(a, monkeypatch)
    assert _push(force=True).generation == 3


def test_missing_settings_name_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("QM_LAKE_S3_BUCKET", "QM_LAKE_S3_ACCESS_KEY_ID", "QM_LAKE_S3_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .dlt folder to read settings from
    with pytest.raises(lake.LakeError, match="set QM_LAKE_S3_BUCKET, QM_LAKE_S3_ACCESS_KEY_ID") as missing:
        lake.load_lake_settings()
    assert missing.value.code == lake.EXIT_SETTINGS
