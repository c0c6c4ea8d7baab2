"""Bronze partitions: folder names, the crash-proof swap, and the writers of tables that fit in memory.

A partition is written into a staging folder beside bronze, then swapped in with two renames, so a reader
globbing `bronze/<dataset>/*/*.parquet` sees the old version or the new one, never both. Staging and
trash live under `bronze/.staging/` and `bronze/.trash/` (same filesystem, hidden from dataset globs).

Two writers for tables that fit in memory (REST datasets): `replace_partitions` and the keyed
`merge_partitions`. Flat files, which are larger than memory, are staged per dlt load and committed by
`loaders.bronze.staging`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loaders.landing import atomic_write

log = logging.getLogger(__name__)

COMPRESSION = "zstd"
ROW_GROUP_ROWS = 1 << 20
STAGING = ".staging"
TRASH = ".trash"
_KEY_SEP = "\x1f"


# --------------------------------------------------------------------------------------------------- paths


def dataset_dir(root: Path | str, dataset: str) -> Path:
    return Path(root) / dataset


def partition_name(column: str, value: Any) -> str:
    """`column=value` with dates as YYYY-MM-DD; values that would escape the folder are refused."""
    if isinstance(value, dt.datetime):
        value = value.date()
    text = value.isoformat() if isinstance(value, dt.date) else str(value)
    if not text or "/" in text or "\\" in text or text.startswith(".") or "\x00" in text:
        raise ValueError(f"partition value {value!r} of column {column!r} cannot be a folder name")
    return f"{column}={text}"


def partition_values(root: Path | str, dataset: str, column: str) -> list[str]:
    """Partition values present in bronze (folders holding at least one Parquet file), sorted."""
    base = dataset_dir(root, dataset)
    prefix = f"{column}="
    if not base.is_dir():
        return []
    out = []
    for entry in base.iterdir():
        if entry.name.startswith(prefix) and entry.is_dir() and any(entry.glob("*.parquet")):
            out.append(entry.name[len(prefix) :])
    return sorted(out)


def partition_column_value(root: Path | str, dataset: str, partition: str, column: str) -> str | None:
    """A constant column's value in a partition (e.g. `_source_etag`), from Parquet statistics when present."""
    folder = dataset_dir(root, dataset) / partition
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    meta = pq.ParquetFile(files[0]).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if column not in names:
        return None
    index = names.index(column)
    if meta.num_row_groups:
        stats = meta.row_group(0).column(index).statistics
        if stats is not None and stats.has_min_max:
            value = stats.min
            return value.decode() if isinstance(value, bytes) else str(value)
    values = pq.read_table(files[0], columns=[column]).column(0)
    return None if len(values) == 0 else str(values[0].as_py())


# --------------------------------------------------------------------------------------------------- swap


def link_or_copy(src: Path, dst: Path) -> None:
    """Place `src` at `dst` atomically; a hard link costs no write when both are on one filesystem."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def swap_in(staged: Path, final: Path, trash_root: Path) -> None:
    """Replace folder `final` by folder `staged`. Idempotent: a crash between the renames is repaired by rerunning."""
    final.parent.mkdir(parents=True, exist_ok=True)
    trash = trash_root / f"{final.name}.{uuid.uuid4().hex[:12]}"
    if final.exists():
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(final, trash)
    os.rename(staged, final)
    if trash.exists():
        shutil.rmtree(trash, ignore_errors=True)


# A merge or replace writes every new partition into `.staging/<dataset>/<token>/`, then this plan file,
# then swaps. The plan is the commit point: a token folder without it is an interrupted write (deleted,
# bronze untouched); with it, the swaps it lists are finished by whichever run comes next.
SWAP_PLAN = "_swap_plan.json"


def _swap_planned(root: Path, dataset: str, token: str, swaps: list[str], removals: list[str]) -> None:
    """Commit the plan of one write (atomically), then carry it out."""
    staging = root / STAGING / dataset / token
    staging.mkdir(parents=True, exist_ok=True)
    atomic_write(staging / SWAP_PLAN, json.dumps({"swaps": swaps, "removals": removals}))
    _carry_out(root, dataset, token, swaps, removals)


def _carry_out(root: Path, dataset: str, token: str, swaps: list[str], removals: list[str]) -> None:
    """Swap in every partition of the plan still in staging; move the removed ones to trash. Idempotent."""
    staging = root / STAGING / dataset / token
    trash = root / TRASH / dataset / token
    base = dataset_dir(root, dataset)
    for name in swaps:
        if (staging / name).exists():
            swap_in(staging / name, base / name, trash)
    for name in removals:
        if (base / name).exists():
            trash.mkdir(parents=True, exist_ok=True)
            os.rename(base / name, trash / f"{name}.{uuid.uuid4().hex[:12]}")


def _drop_token(root: Path, dataset: str, token: str) -> None:
    shutil.rmtree(root / STAGING / dataset / token, ignore_errors=True)
    shutil.rmtree(root / TRASH / dataset / token, ignore_errors=True)


def repair_swaps(root: Path | str, dataset: str) -> list[str]:
    """Finish the committed writes of `dataset` a killed process left half-swapped; delete uncommitted ones.

    Run before every write of the dataset (under its ingest lock). A kill between the two renames of a swap
    leaves the old partition in trash and the new one (old rows + new rows) in staging: the swap is
    finished, so no row is lost. Returns the tokens it finished. Staging of dlt loads (`load-<id>`, the
    flat-file path) is left to `loaders.bronze.staging.commit_staged`.
    """
    root = Path(root)
    finished: list[str] = []
    staging_root = root / STAGING / dataset
    tokens = set()
    if staging_root.is_dir():
        tokens |= {p.name for p in staging_root.iterdir() if p.is_dir() and not p.name.startswith("load-")}
    trash_root = root / TRASH / dataset
    if trash_root.is_dir():
        tokens |= {p.name for p in trash_root.iterdir() if p.is_dir() and _is_token(p.name)}
    for token in sorted(tokens):
        if not _is_token(token):
            continue  # a nested table's folder (`fundamentals/<table>`), repaired on its own
        plan_file = staging_root / token / SWAP_PLAN
        if plan_file.is_file():
            try:
                plan = json.loads(plan_file.read_text(encoding="utf-8"))
            except ValueError:
                plan = None
            if plan is not None:
                _carry_out(root, dataset, token, list(plan["swaps"]), list(plan["removals"]))
                finished.append(token)
                log.warning("finished the interrupted bronze write %s of %s", token, dataset)
        _drop_token(root, dataset, token)
    return finished


def _is_token(name: str) -> bool:
    """`_new_token()` names: 20261201T155758-a28abb12."""
    head, _, tail = name.partition("-")
    return len(head) == 15 and head[8] == "T" and len(tail) == 8


def write_parquet(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS)


def _new_token() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------------- in-memory writers


def _group_by_partition(table: pa.Table, column: str) -> dict[str, pa.Table]:
    if column not in table.column_names:
        raise ValueError(f"table has no partition column {column!r} (columns: {table.column_names})")
    values = table.column(column)
    if values.null_count:
        raise ValueError(f"partition column {column!r} has {values.null_count} null value(s)")
    groups: dict[str, pa.Table] = {}
    body = table.drop_columns([column])
    for value in pc.unique(values).to_pylist():
        mask = pc.equal(values, pa.scalar(value, values.type))
        groups[partition_name(column, value)] = body.filter(mask)
    return groups


def replace_partitions(
    root: Path | str, dataset: str, table: pa.Table, partition_column: str, *, file_prefix: str = "part"
) -> dict[str, int]:
    """Write `table` so each partition value it contains holds exactly these rows afterwards.

    Partitions not in `table` are untouched. Files are named `<file_prefix>-0.parquet` (stable names).
    Returns rows written per partition folder.
    """
    root = Path(root)
    repair_swaps(root, dataset)
    token = _new_token()
    staging = root / STAGING / dataset / token
    written: dict[str, int] = {}
    try:
        groups = _group_by_partition(table, partition_column)
        for name, rows in groups.items():
            write_parquet(rows, staging / name / f"{file_prefix}-0.parquet")
            written[name] = rows.num_rows
        _swap_planned(root, dataset, token, sorted(groups), [])
    finally:
        _drop_token(root, dataset, token)
    return written


def _key_array(
    table: pa.Table, primary_key: Iterable[str], partition: tuple[str, pa.Array] | None = None
) -> pa.Array:
    """One string per row spelling its primary key.

    `partition` = (column, folder text per row) stands in for the partition column: old files do not hold
    it (it lives in the folder name), so both sides of a merge spell it as its folder text.
    """
    columns = list(primary_key)
    substitute = partition[0] if partition is not None else None
    missing = [c for c in columns if c != substitute and c not in table.column_names]
    if missing:
        raise ValueError(f"primary key column(s) {missing} not in table (columns: {table.column_names})")
    parts = []
    for column in columns:
        if partition is not None and column == substitute:
            parts.append(partition[1])
        else:
            parts.append(pc.cast(table.column(column), pa.string()).combine_chunks())
    for column, part in zip(columns, parts, strict=True):
        if part.null_count:
            raise ValueError(f"primary key column {column!r} has {part.null_count} null value(s)")
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, _KEY_SEP)


def _folder_texts(values: pa.ChunkedArray | pa.Array, column: str) -> pa.Array:
    """Each row's partition value as its folder spells it (`partition_name` without `column=`)."""
    if values.null_count:
        raise ValueError(f"partition column {column!r} has {values.null_count} null value(s)")
    unique = pc.unique(values)
    prefix = len(column) + 1
    texts = pa.array([partition_name(column, v)[prefix:] for v in unique.to_pylist()], pa.string())
    return texts.take(pc.index_in(values, value_set=unique))


def _constant_text(text: str, rows: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows, dtype=np.int32)), pa.array([text], pa.string())
    ).cast(pa.string())


def _last_per_key(table: pa.Table, keys: pa.Array) -> pa.Table:
    """Keep the last row of each key inside one batch (a page re-sent later in the same load wins)."""
    index = pa.array(range(table.num_rows), pa.int64())
    grouped = pa.table({"k": keys, "i": index}).group_by("k", use_threads=False).aggregate([("i", "max")])
    keep = pc.sort_indices(grouped.column("i_max"))
    return table.take(pc.take(grouped.column("i_max"), keep))


def _old_keys(files: list[Path], pk: list[str], partition_column: str, text: str) -> pa.Array:
    """Primary keys of a partition's files, the partition column taken from the folder name."""
    stored = [c for c in pk if c != partition_column]
    if stored:
        table = pq.read_table(files, columns=stored, partitioning=None)
        rows = table.num_rows
    else:
        table = pa.table({})
        rows = sum(pq.read_metadata(f).num_rows for f in files)
    return _key_array(table, pk, (partition_column, _constant_text(text, rows)))


def _moved_from(
    folders: list[Path],
    affected: set[str],
    new_keys: pa.Array,
    pk: list[str],
    partition_column: str,
    prefix: str,
) -> set[str]:
    """The partitions outside `affected` holding one of `new_keys`: a key that moved to another partition.

    A key that includes the partition column cannot be in another partition's folder, so nothing is read.
    Otherwise the stored key columns of all those partitions are read in one pass (a windowed listing
    merged into years of history reads a few bytes per partition, not one table each); only when a key
    is found are the partitions looked at one by one to tell which ones hold it.
    """
    if partition_column in pk:
        return set()
    others = {
        folder.name: files
        for folder in folders
        if folder.name not in affected and (files := sorted(folder.glob("*.parquet")))
    }
    if not others:
        return set()
    every_file = [str(f) for files in others.values() for f in files]
    stored = pq.ParquetDataset(every_file, partitioning=None).read(columns=pk)
    if not pc.any(pc.is_in(_key_array(stored, pk), value_set=new_keys)).as_py():
        return set()
    return {
        name
        for name, files in others.items()
        if pc.any(
            pc.is_in(_old_keys(files, pk, partition_column, name[len(prefix) :]), value_set=new_keys)
        ).as_py()
    }


def merge_partitions(
    root: Path | str,
    dataset: str,
    table: pa.Table,
    partition_column: str,
    primary_key: str | Iterable[str],
    *,
    file_prefix: str = "part",
) -> dict[str, int]:
    """Upsert `table` by `primary_key`: affected partitions are read, stale rows dropped, new rows added.

    A key that moved to another partition is removed from its old one, so a key lives in one place.
    The key may include the partition column: old rows get it back from their folder name.
    Schemas are unified (new columns appear as nulls in old rows). Returns rows per rewritten partition.
    """
    root = Path(root)
    repair_swaps(root, dataset)
    pk = [primary_key] if isinstance(primary_key, str) else list(primary_key)
    if table.num_rows == 0:
        return {}
    if partition_column not in table.column_names:
        raise ValueError(
            f"table has no partition column {partition_column!r} (columns: {table.column_names})"
        )

    def keys_of(batch: pa.Table) -> pa.Array:
        if partition_column not in pk:
            return _key_array(batch, pk)
        texts = _folder_texts(batch.column(partition_column), partition_column)
        return _key_array(batch, pk, (partition_column, texts))

    table = _last_per_key(table, keys_of(table))
    new_keys = keys_of(table)
    new_groups = _group_by_partition(table, partition_column)
    affected = set(new_groups)
    base = dataset_dir(root, dataset)
    prefix = f"{partition_column}="
    existing = (
        [p for p in base.iterdir() if p.name.startswith(prefix) and p.is_dir()] if base.is_dir() else []
    )
    affected |= _moved_from(existing, affected, new_keys, pk, partition_column, prefix)

    token = _new_token()
    staging = root / STAGING / dataset / token
    written: dict[str, int] = {}
    removed: list[str] = []
    try:
        for name in sorted(affected):
            parts: list[pa.Table] = []
            files = sorted((base / name).glob("*.parquet")) if (base / name).is_dir() else []
            if files:
                old = pq.read_table(files, partitioning=None)
                old = old.drop_columns([c for c in old.column_names if c == partition_column])
                old_keys = _key_array(
                    old, pk, (partition_column, _constant_text(name[len(prefix) :], old.num_rows))
                )
                replaced = pc.is_in(old_keys, value_set=new_keys)
                if name in new_groups and _same_rows(
                    old.filter(replaced),
                    old_keys.filter(replaced),
                    new_groups[name],
                    _key_array(
                        new_groups[name],
                        pk,
                        (partition_column, _constant_text(name[len(prefix) :], new_groups[name].num_rows)),
                    ),
                    partition_column,
                ):
                    # every row sent for this partition is already stored as it is: nothing to rewrite
                    # (a REST dataset re-sent whole on each run rewrites only the partitions that changed)
                    continue
                parts.append(old.filter(pc.invert(replaced)))
            if name in new_groups:
                parts.append(new_groups[name])
            merged = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
            if merged.num_rows == 0:
                removed.append(name)
                written[name] = 0
                continue
            write_parquet(merged, staging / name / f"{file_prefix}-0.parquet")
            written[name] = merged.num_rows
        _swap_planned(root, dataset, token, sorted(set(written) - set(removed)), removed)
    finally:
        _drop_token(root, dataset, token)
    return written


#: bookkeeping columns a re-sent row carries anew on every load; a stored row with equal data is the same row
LOAD_COLUMNS = frozenset({"_dlt_load_id", "_dlt_id"})


def _same_rows(
    old: pa.Table, old_keys: pa.Array, new: pa.Table, new_keys: pa.Array, partition_column: str
) -> bool:
    """`new` (one partition's incoming rows, keys `new_keys`) equals the stored rows `old` (keys `old_keys`)
    it would replace: the same keys, columns, types and values, load bookkeeping (`LOAD_COLUMNS`) aside."""
    if old.num_rows != new.num_rows:
        return False
    columns = sorted(c for c in new.column_names if c not in LOAD_COLUMNS and c != partition_column)
    stored = sorted(c for c in old.column_names if c not in LOAD_COLUMNS and c != partition_column)
    if columns != stored or any(old.schema.field(c).type != new.schema.field(c).type for c in columns):
        return False
    old_order = pc.sort_indices(old_keys)
    new_order = pc.sort_indices(new_keys)
    if not old_keys.take(old_order).equals(new_keys.take(new_order)):
        return False
    old_sorted = old.select(columns).take(old_order)
    new_sorted = new.select(columns).take(new_order)
    return all(
        old_sorted.column(c).combine_chunks().equals(new_sorted.column(c).combine_chunks()) for c in columns
    )
