"""Bronze writer: Hive-partitioned Parquet (ZSTD) where every partition is replaced as a whole.

A partition is written into a staging folder beside bronze, then swapped in with two renames, so a reader
globbing `bronze/<dataset>/*/*.parquet` sees the old version or the new one, never both. Staging and
trash live under `bronze/.staging/` and `bronze/.trash/` (same filesystem, hidden from dataset globs).

Two entry points for tables that fit in memory (REST datasets): `replace_partitions` and the keyed
`merge_partitions`. Flat files, which are larger than memory, go through the dlt destination made by
`bronze_destination`: dlt's extract writes each Arrow batch once as Parquet, the destination hard-links
that file into a per-load staging folder (or splits a file gathering several small sessions), and
`commit_staged` swaps complete sessions in afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

COMPRESSION = "zstd"
ROW_GROUP_ROWS = 1 << 20
STAGING = ".staging"
TRASH = ".trash"
MANIFEST_DIR = "_manifest"
SPLIT_WRITERS = 2
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


def _link_or_copy(src: Path, dst: Path) -> None:
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
    plan = staging / SWAP_PLAN
    tmp = plan.with_name(f".{plan.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"swaps": swaps, "removals": removals}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, plan)
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
    flat-file path) is left to `commit_staged`.
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


def _write_parquet(table: pa.Table, path: Path) -> None:
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
            _write_parquet(rows, staging / name / f"{file_prefix}-0.parquet")
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
    for folder in existing:
        if folder.name in affected:
            continue
        files = sorted(folder.glob("*.parquet"))
        if not files:
            continue
        old_keys = _old_keys(files, pk, partition_column, folder.name[len(prefix) :])
        if pc.any(pc.is_in(old_keys, value_set=new_keys)).as_py():
            affected.add(folder.name)

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
            _write_parquet(merged, staging / name / f"{file_prefix}-0.parquet")
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


# --------------------------------------------------------------------------------------------------- dlt destination


@dataclass(frozen=True)
class CommitResult:
    load_id: str
    partition: str
    rows: int
    committed: bool
    reason: str = ""


def _load_dir(root: Path, dataset: str, load_id: str) -> Path:
    return root / STAGING / dataset / f"load-{load_id}"


def _job_file_id(path: str) -> str:
    """`<table>.<file_id>.<retry>.parquet` -> file_id (unique within the load)."""
    parts = os.path.basename(path).split(".")
    return parts[-3] if len(parts) >= 4 else uuid.uuid4().hex[:10]


def _constant_stat(meta: pq.FileMetaData, column: str) -> tuple[str | None, bool]:
    """(value, is_constant) of a string column from row-group statistics."""
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if column not in names or meta.num_row_groups == 0:
        return None, False
    index = names.index(column)
    lo = hi = None
    for rg in range(meta.num_row_groups):
        stats = meta.row_group(rg).column(index).statistics
        if stats is None or not stats.has_min_max:
            return None, False
        rmin, rmax = stats.min, stats.max
        rmin = rmin.decode() if isinstance(rmin, bytes) else str(rmin)
        rmax = rmax.decode() if isinstance(rmax, bytes) else str(rmax)
        lo = rmin if lo is None else min(lo, rmin)
        hi = rmax if hi is None else max(hi, rmax)
    return lo, lo == hi


def stage_file(
    root: Path,
    dataset: str,
    path: str,
    *,
    partition_column: str,
    partition_of: Callable[[str], Any],
    source_column: str = "_source_key",
    load_column: str = "_dlt_load_id",
) -> list[Path]:
    """Put one dlt job file into its load's staging folder, under the partition its source key maps to.

    A file holding one source key (a batch of a large file) is hard-linked: no Parquet rewrite. A file
    gathering several small source files is split, one small Parquet file per key. Re-staging the same job (a retried or resumed load) overwrites the same names.
    """
    meta = pq.read_metadata(path)
    load_id, _ = _constant_stat(meta, load_column)
    if load_id is None:
        load_id = str(pq.read_table(path, columns=[load_column]).column(0)[0].as_py())
    load_dir = _load_dir(root, dataset, load_id)
    file_id = _job_file_id(path)
    key, constant = _constant_stat(meta, source_column)
    if constant and key is not None:
        target = (
            load_dir / partition_name(partition_column, partition_of(key)) / f"{load_id}-{file_id}.parquet"
        )
        _link_or_copy(Path(path), target)
        return [target]
    pieces = split_by_column(pq.read_table(path), source_column)
    out = [
        load_dir / partition_name(partition_column, partition_of(value)) / f"{load_id}-{file_id}-{n}.parquet"
        for n, (value, _) in enumerate(pieces)
    ]

    def write(target: Path, rows: pa.Table) -> None:
        tmp = target.with_name(f".{target.name}.tmp")
        _write_parquet(rows, tmp)
        os.replace(tmp, target)

    # hundreds of tiny files: most of each write is folder and file creation, which two threads overlap
    with ThreadPoolExecutor(max_workers=SPLIT_WRITERS, thread_name_prefix="bronze-split") as pool:
        list(pool.map(write, out, [rows for _, rows in pieces]))
    return out


def _compact_dictionaries(table: pa.Table) -> pa.Table:
    """Re-encode dictionary columns so each keeps only its own values (a slice keeps the whole dictionary)."""
    for i, column_type in enumerate(table.schema.types):
        if pa.types.is_dictionary(column_type):
            plain = table.column(i).cast(column_type.value_type)
            encoded = pc.dictionary_encode(plain.combine_chunks()).cast(column_type)
            table = table.set_column(i, table.schema.field(i), encoded)
    return table


def split_by_column(table: pa.Table, column: str) -> list[tuple[str, pa.Table]]:
    """(value, rows) per distinct value of a string column, sorted by value, each value's rows in file order.

    Linear in the rows: rows of one source file are contiguous in the files we write, so the table is cut
    at the points where the value changes (a value met in several runs gets its runs concatenated).
    """
    keys = table.column(column)
    if pa.types.is_dictionary(keys.type):
        keys = keys.cast(keys.type.value_type)
    keys = keys.combine_chunks()
    if keys.null_count:
        raise ValueError(f"column {column!r} has {keys.null_count} null value(s)")
    n = len(keys)
    if n == 0:
        return []
    changes = pc.indices_nonzero(pc.not_equal(keys.slice(1), keys.slice(0, n - 1))).to_pylist()
    starts = [0, *(i + 1 for i in changes)]
    runs: dict[str, list[pa.Table]] = {}
    for start, stop in zip(starts, [*starts[1:], n], strict=True):
        runs.setdefault(keys[start].as_py(), []).append(table.slice(start, stop - start))
    return [(value, _compact_dictionaries(pa.concat_tables(runs[value]))) for value in sorted(runs)]


def stage_manifest(root: Path, dataset: str, path: str, load_column: str = "load_id") -> Path:
    """Keep a manifest job file (one row per fully parsed source file) beside the load's staged data."""
    values = pq.read_table(path, columns=[load_column]).column(0)
    load_id = str(values[0].as_py())
    target = _load_dir(root, dataset, load_id) / MANIFEST_DIR / f"{_job_file_id(path)}.parquet"
    _link_or_copy(Path(path), target)
    return target


def bronze_destination(
    root: Path | str,
    dataset: str,
    *,
    data_table: str,
    manifest_table: str,
    partition_column: str,
    partition_of: Callable[[str], Any],
) -> Any:
    """A dlt custom destination (`batch_size=0`: it receives file paths) that stages files for `commit_staged`."""
    from dlt.destinations import destination as custom_destination

    root = Path(root)

    def bronze(items: Any, table: Any) -> None:
        name = table["name"]
        if name == manifest_table:
            stage_manifest(root, dataset, items)
        elif name == data_table:
            stage_file(root, dataset, items, partition_column=partition_column, partition_of=partition_of)
        else:
            log.debug("bronze destination ignores table %s", name)

    # The stock factory class (not a synthesised subclass) keeps the pipeline's destination type importable,
    # so `dlt pipeline <name> info` works from another process.
    return custom_destination(
        destination_callable=bronze,
        destination_name="bronze",
        loader_file_format="parquet",
        batch_size=0,
        naming_convention="direct",
        # dlt tables (the pipeline state) reach the callable, which ignores them: a skipped job would leave
        # dlt's load loop waiting a full second for a completion signal that never comes
        skip_dlt_columns_and_tables=False,
        # One job at a time: dlt commits the shared load-package state after every custom-destination job,
        # and two threads doing that at once corrupt it (seen as a segfault in orjson under load). Staging is
        # a hard link per file, so parallel jobs would buy nothing anyway.
        max_parallel_load_jobs=1,
        loader_parallelism_strategy="sequential",
    )


def staged_load_ids(root: Path | str, dataset: str) -> list[str]:
    base = Path(root) / STAGING / dataset
    if not base.is_dir():
        return []
    return sorted(p.name[len("load-") :] for p in base.iterdir() if p.name.startswith("load-"))


def commit_staged(
    root: Path | str,
    dataset: str,
    *,
    partition_column: str,
    exclude: Iterable[str] = (),
    manifest_partition: str = "session_date",
    manifest_rows: str = "rows",
) -> list[CommitResult]:
    """Swap every staged partition whose row count matches its manifest row into bronze; drop the rest.

    Idempotent and resumable: a partition already swapped is no longer in staging, a crash half-way through
    a swap is repaired by the next call. Loads are committed oldest first, so the newest load wins.
    `exclude` holds load ids dlt has not finished loading yet (their files are still arriving).
    """
    root = Path(root)
    skip = set(exclude)
    results: list[CommitResult] = []
    trash_root = root / TRASH / dataset
    for load_id in staged_load_ids(root, dataset):
        if load_id in skip:
            continue
        load_dir = _load_dir(root, dataset, load_id)
        expected: dict[str, int] = {}
        manifest_files = sorted((load_dir / MANIFEST_DIR).glob("*.parquet"))
        if manifest_files:
            manifest = pq.read_table(manifest_files, columns=[manifest_partition, manifest_rows])
            for value, rows in zip(
                manifest.column(0).to_pylist(), manifest.column(1).to_pylist(), strict=True
            ):
                name = partition_name(partition_column, value)
                expected[name] = expected.get(name, 0) + int(rows)
        for folder in sorted(p for p in load_dir.iterdir() if p.name.startswith(f"{partition_column}=")):
            files = sorted(folder.glob("*.parquet"))
            staged = sum(pq.read_metadata(f).num_rows for f in files)
            want = expected.get(folder.name)
            if want is None or want != staged or staged == 0:
                reason = (
                    "file was not fully parsed" if want is None else f"staged {staged} rows, expected {want}"
                )
                log.warning("not committing %s %s from load %s: %s", dataset, folder.name, load_id, reason)
                shutil.rmtree(folder, ignore_errors=True)
                results.append(CommitResult(load_id, folder.name, staged, False, reason))
                continue
            swap_in(folder, dataset_dir(root, dataset) / folder.name, trash_root)
            results.append(CommitResult(load_id, folder.name, staged, True))
        shutil.rmtree(load_dir, ignore_errors=True)
    shutil.rmtree(trash_root, ignore_errors=True)
    return results
