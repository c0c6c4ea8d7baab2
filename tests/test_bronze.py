"""Bronze writer: whole-partition replace, keyed merge, staged commit that survives a crash half-way."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import bronze

D1, D2, D3 = dt.date(2025, 1, 2), dt.date(2025, 1, 3), dt.date(2025, 1, 6)


def _read(root: Path, dataset: str) -> list[tuple]:
    glob = str(root / dataset / "*" / "*.parquet")
    return duckdb.sql(
        f"select * exclude (session_date), session_date from read_parquet('{glob}', hive_partitioning = true, union_by_name = true) order by all"
    ).fetchall()


def _table(rows: list[tuple[dt.date, str, float]]) -> pa.Table:
    return pa.table(
        {
            "session_date": pa.array([r[0] for r in rows], pa.date32()),
            "id": [r[1] for r in rows],
            "value": [r[2] for r in rows],
        }
    )


def test_replace_partitions_replaces_only_the_partitions_in_the_batch(tmp_path: Path) -> None:
    bronze.replace_partitions(tmp_path, "t", _table([(D1, "a", 1.0), (D2, "b", 2.0)]), "session_date")
    bronze.replace_partitions(tmp_path, "t", _table([(D2, "c", 3.0)]), "session_date")
    assert _read(tmp_path, "t") == [("a", 1.0, D1), ("c", 3.0, D2)]
    assert bronze.partition_values(tmp_path, "t", "session_date") == [D1.isoformat(), D2.isoformat()]
    files = sorted((tmp_path / "t").glob("*/*.parquet"))
    assert [f.name for f in files] == ["part-0.parquet", "part-0.parquet"]
    meta = pq.read_metadata(files[0])
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert "session_date" not in pq.read_schema(files[0]).names  # it lives in the folder name
    assert not any((tmp_path / bronze.STAGING).rglob("*.parquet"))


def test_replace_partitions_twice_gives_the_same_rows(tmp_path: Path) -> None:
    batch = _table([(D1, "a", 1.0), (D1, "b", 2.0)])
    bronze.replace_partitions(tmp_path, "t", batch, "session_date")
    first = _read(tmp_path, "t")
    bronze.replace_partitions(tmp_path, "t", batch, "session_date")
    assert _read(tmp_path, "t") == first


def test_replace_partitions_refuses_bad_partition_values(tmp_path: Path) -> None:
    table = pa.table({"p": ["../x"], "v": [1]})
    with pytest.raises(ValueError, match="cannot be a folder name"):
        bronze.replace_partitions(tmp_path, "t", table, "p")
    with pytest.raises(ValueError, match="no partition column"):
        bronze.replace_partitions(tmp_path, "t", table, "missing")


def test_merge_partitions_upserts_by_key_and_never_duplicates(tmp_path: Path) -> None:
    bronze.merge_partitions(
        tmp_path, "t", _table([(D1, "a", 1.0), (D1, "b", 2.0), (D2, "c", 3.0)]), "session_date", "id"
    )
    # b changes value, a moves to another partition, d is new; the batch repeats d (last one wins)
    update = _table([(D1, "b", 20.0), (D3, "a", 10.0), (D2, "d", 4.0), (D2, "d", 5.0)])
    bronze.merge_partitions(tmp_path, "t", update, "session_date", ["id"])
    assert _read(tmp_path, "t") == [("a", 10.0, D3), ("b", 20.0, D1), ("c", 3.0, D2), ("d", 5.0, D2)]
    bronze.merge_partitions(tmp_path, "t", update, "session_date", "id")
    assert len(_read(tmp_path, "t")) == 4


def test_merge_partitions_rewrites_only_partitions_whose_rows_changed(tmp_path: Path) -> None:
    """A REST dataset is sent whole on every run with new load ids: partitions whose rows are stored
    as they are stay untouched (same file, same inode); a changed value, a new row or a key that moved
    rewrites just the partitions it touches."""

    def loaded(rows: list[tuple[dt.date, str, float]], load_id: str) -> pa.Table:
        table = _table(rows)
        return table.append_column("_dlt_load_id", pa.array([load_id] * table.num_rows)).append_column(
            "_dlt_id", pa.array([f"{load_id}-{i}" for i in range(table.num_rows)])
        )

    rows = [(D1, "a", 1.0), (D1, "b", 2.0), (D2, "c", 3.0), (D3, "d", 4.0)]
    bronze.merge_partitions(tmp_path, "t", loaded(rows, "1"), "session_date", "id")

    def inodes() -> dict[str, int]:
        return {p.parent.name: p.stat().st_ino for p in (tmp_path / "t").glob("*/*.parquet")}

    before = inodes()
    assert bronze.merge_partitions(tmp_path, "t", loaded(rows, "2"), "session_date", "id") == {}
    assert inodes() == before
    assert {r["_dlt_load_id"] for r in pq.read_table(tmp_path / "t").to_pylist()} == {"1"}

    # b changes value (D1), e is new (D2), d unchanged (D3) but sent again: only D1 and D2 are rewritten
    changed = [(D1, "a", 1.0), (D1, "b", 20.0), (D2, "c", 3.0), (D2, "e", 5.0), (D3, "d", 4.0)]
    written = bronze.merge_partitions(tmp_path, "t", loaded(changed, "3"), "session_date", "id")
    assert written == {f"session_date={D1}": 2, f"session_date={D2}": 2}
    assert inodes()[f"session_date={D3}"] == before[f"session_date={D3}"]
    assert [r[:2] for r in _read(tmp_path, "t") if r[0] == "b"] == [("b", 20.0)]

    # d moves from D3 to D1 with its value unchanged: both partitions are rewritten, d lives in one place
    moved = [(D1, "a", 1.0), (D1, "b", 20.0), (D1, "d", 4.0), (D2, "c", 3.0), (D2, "e", 5.0)]
    written = bronze.merge_partitions(tmp_path, "t", loaded(moved, "4"), "session_date", "id")
    assert set(written) == {f"session_date={D1}", f"session_date={D3}"}
    assert [(r[0], r[-1]) for r in _read(tmp_path, "t") if r[0] == "d"] == [("d", D1)]

    # a type change of a column is a change too (rewritten, not compared value by value)
    retyped = loaded(moved, "5").set_column(2, "value", pa.array([1, 20, 4, 3, 5], pa.int64()))
    assert set(bronze.merge_partitions(tmp_path, "t", retyped, "session_date", "id")) == {
        f"session_date={D1}",
        f"session_date={D2}",
    }


def test_merge_partitions_adds_new_columns_as_nulls(tmp_path: Path) -> None:
    bronze.merge_partitions(tmp_path, "t", _table([(D1, "a", 1.0)]), "session_date", "id")
    wider = _table([(D1, "b", 2.0)]).append_column("note", pa.array(["x"]))
    bronze.merge_partitions(tmp_path, "t", wider, "session_date", "id")
    rows = pq.read_table(next((tmp_path / "t").glob("*/*.parquet"))).sort_by("id").to_pylist()
    assert rows == [{"id": "a", "value": 1.0, "note": None}, {"id": "b", "value": 2.0, "note": "x"}]


def test_merge_partitions_with_the_partition_column_in_the_key(tmp_path: Path) -> None:
    """Old files lack the partition column (it is the folder name): their keys take it from the folder."""
    first = _table([(D1, "a", 1.0), (D1, "b", 2.0), (D2, "a", 3.0)])
    assert bronze.merge_partitions(tmp_path, "t", first, "session_date", ["id", "session_date"]) == {
        f"session_date={D1}": 2,
        f"session_date={D2}": 1,
    }
    untouched = next((tmp_path / "t" / f"session_date={D2}").glob("*.parquet")).stat().st_ino
    # (a, D1) changes; (a, D2) is another key and stays; (c, D3) is new; the batch repeats (a, D1)
    update = _table([(D1, "a", 9.0), (D1, "a", 10.0), (D3, "c", 4.0)])
    written = bronze.merge_partitions(tmp_path, "t", update, "session_date", ["id", "session_date"])
    assert written == {f"session_date={D1}": 2, f"session_date={D3}": 1}
    expected = [("a", 3.0, D2), ("a", 10.0, D1), ("b", 2.0, D1), ("c", 4.0, D3)]
    assert sorted(_read(tmp_path, "t")) == sorted(expected)
    assert next((tmp_path / "t" / f"session_date={D2}").glob("*.parquet")).stat().st_ino == untouched
    bronze.merge_partitions(tmp_path, "t", update, "session_date", ["session_date", "id"])
    assert sorted(_read(tmp_path, "t")) == sorted(expected)  # a re-run adds nothing
    assert "session_date" not in pq.read_schema(next((tmp_path / "t").glob("*/*.parquet"))).names


def test_merge_partitions_keyed_on_the_partition_column_alone_replaces_its_row(tmp_path: Path) -> None:
    bronze.merge_partitions(
        tmp_path, "t", _table([(D1, "a", 1.0), (D2, "b", 2.0)]), "session_date", "session_date"
    )
    bronze.merge_partitions(tmp_path, "t", _table([(D1, "z", 5.0)]), "session_date", "session_date")
    assert sorted(_read(tmp_path, "t")) == [("b", 2.0, D2), ("z", 5.0, D1)]


def test_merge_partitions_string_partition_in_the_key(tmp_path: Path) -> None:
    table = pa.table({"exchange": ["NYSE", "NYSE", "NASDAQ"], "day": ["d1", "d2", "d1"], "open": [1, 0, 1]})
    bronze.merge_partitions(tmp_path, "h", table, "exchange", ["exchange", "day"])
    update = pa.table({"exchange": ["NYSE"], "day": ["d1"], "open": [0]})
    assert bronze.merge_partitions(tmp_path, "h", update, "exchange", ["exchange", "day"]) == {
        "exchange=NYSE": 2
    }
    rows = duckdb.sql(
        f"select exchange, day, open from read_parquet('{tmp_path}/h/*/*.parquet', hive_partitioning = true) order by all"
    ).fetchall()
    assert rows == [("NASDAQ", "d1", 1), ("NYSE", "d1", 0), ("NYSE", "d2", 0)]


def test_merge_partitions_names_a_missing_key_column(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"primary key column\(s\) \['nope'\]"):
        bronze.merge_partitions(
            tmp_path, "t", _table([(D1, "a", 1.0)]), "session_date", ["nope", "session_date"]
        )
    with pytest.raises(ValueError, match="no partition column 'day'"):
        bronze.merge_partitions(tmp_path, "t", _table([(D1, "a", 1.0)]), "day", ["id", "day"])


def _stage(root: Path, load_id: str, session: dt.date, rows: int, *, manifest_rows: int | None) -> None:
    """What the dlt destination leaves behind for one session of one load."""
    table = pa.table(
        {
            "ticker": ["A"] * rows,
            "_source_key": [f"x/{session:%Y/%m}/{session}.csv.gz"] * rows,
            "_dlt_load_id": [load_id] * rows,
        }
    )
    job = root / "jobs" / f"t.{load_id.replace('.', '')}{session:%d}.0.parquet"
    job.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, job)
    bronze.stage_file(
        root,
        "t",
        str(job),
        partition_column="session_date",
        partition_of=lambda k: dt.date.fromisoformat(k[-17:-7]),
    )
    if manifest_rows is not None:
        manifest = root / "jobs" / f"t_files.m{load_id.replace('.', '')}{session:%d}.0.parquet"
        pq.write_table(
            pa.table({"session_date": [session], "rows": [manifest_rows], "load_id": [load_id]}), manifest
        )
        bronze.stage_manifest(root, "t", str(manifest))


def test_commit_staged_swaps_complete_sessions_and_drops_incomplete_ones(tmp_path: Path) -> None:
    _stage(tmp_path, "100.1", D1, 3, manifest_rows=3)
    _stage(tmp_path, "100.1", D2, 2, manifest_rows=None)  # file rejected half-way: no manifest row
    _stage(tmp_path, "100.1", D3, 2, manifest_rows=5)  # rows missing
    results = bronze.commit_staged(tmp_path, "t", partition_column="session_date")
    assert {(r.partition, r.committed) for r in results} == {
        (f"session_date={D1}", True),
        (f"session_date={D2}", False),
        (f"session_date={D3}", False),
    }
    assert bronze.partition_values(tmp_path, "t", "session_date") == [D1.isoformat()]
    assert bronze.staged_load_ids(tmp_path, "t") == []
    assert bronze.commit_staged(tmp_path, "t", partition_column="session_date") == []


def test_commit_staged_is_resumable_after_a_crash_between_the_two_renames(tmp_path: Path) -> None:
    _stage(tmp_path, "100.1", D1, 3, manifest_rows=3)
    bronze.commit_staged(tmp_path, "t", partition_column="session_date")
    _stage(tmp_path, "200.2", D1, 4, manifest_rows=4)
    final = tmp_path / "t" / f"session_date={D1}"
    # crash: the old folder went to the trash, the new one was not renamed in yet
    os.makedirs(tmp_path / bronze.TRASH / "t", exist_ok=True)
    os.rename(final, tmp_path / bronze.TRASH / "t" / "old")
    assert bronze.commit_staged(tmp_path, "t", partition_column="session_date")[0].committed
    assert len(_read(tmp_path, "t")) == 4
    assert [f.name for f in final.glob("*.parquet")][0].startswith("200.2-")
    assert not (tmp_path / bronze.TRASH / "t").exists()


def test_commit_staged_excludes_loads_still_in_progress_and_newest_load_wins(tmp_path: Path) -> None:
    _stage(tmp_path, "100.1", D1, 3, manifest_rows=3)
    _stage(tmp_path, "200.2", D1, 5, manifest_rows=5)
    assert (
        bronze.commit_staged(tmp_path, "t", partition_column="session_date", exclude=["200.2"])[0].rows == 3
    )
    assert bronze.staged_load_ids(tmp_path, "t") == ["200.2"]
    bronze.commit_staged(tmp_path, "t", partition_column="session_date")
    assert len(_read(tmp_path, "t")) == 5


def test_stage_file_hard_links_single_key_files_and_splits_mixed_ones(tmp_path: Path) -> None:
    _stage(tmp_path, "100.1", D1, 3, manifest_rows=3)
    staged = next((tmp_path / bronze.STAGING / "t").rglob("session_date=*/*.parquet"))
    job = next((tmp_path / "jobs").glob("t.*.parquet"))
    assert os.stat(staged).st_ino == os.stat(job).st_ino  # no rewrite
    mixed = pa.table(
        {
            "ticker": ["A", "B", "C"],
            "_source_key": [f"x/2025/01/{D1}.csv.gz", f"x/2025/01/{D2}.csv.gz", f"x/2025/01/{D1}.csv.gz"],
            "_dlt_load_id": ["300.3"] * 3,
        }
    )
    path = tmp_path / "jobs" / "t.mixed.0.parquet"
    pq.write_table(mixed, path)
    out = bronze.stage_file(
        tmp_path, "t", str(path), partition_column="session_date", partition_of=lambda k: k[-17:-7]
    )
    assert sorted(pq.read_metadata(p).num_rows for p in out) == [1, 2]
    assert {p.parent.name for p in out} == {f"session_date={D1}", f"session_date={D2}"}


def test_both_dlt_destinations_are_found_again_by_the_type_the_pipeline_state_records() -> None:
    """`dlt pipeline <name> info` (another process) rebuilds the destination from its recorded type."""
    from dlt.common.destination import Destination

    from loaders.bronze import destinations

    made = [
        (destinations.flatfiles_destination("/nonexistent", "stocks_daily"), "bronze_flatfiles"),
        (destinations.rest_destination("/nonexistent", "news"), "bronze_rest"),
    ]
    for destination, function in made:
        kind = "".join(part.title() for part in function.split("_")) + "Destination"
        assert destination.destination_type == f"loaders.bronze.destinations.{kind}"
        again = Destination.from_reference(
            destination.destination_type, destination_name=destination.destination_name
        )
        assert type(again) is type(destination)
        callable_ = again.config_params["destination_callable"]  # not dlt's placeholder that refuses to load
        assert (callable_.__module__, callable_.__name__) == ("loaders.bronze.destinations", function)
