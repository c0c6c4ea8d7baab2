"""Staging and commit of the flat-file loads: larger than memory, so bronze never holds them whole.

dlt's extract writes each Arrow batch once as Parquet; the flat-file destination
(`loaders.bronze.destinations.bronze_flatfiles`) hard-links that file into a per-load staging folder
`bronze/.staging/<dataset>/load-<load id>/<partition>/` (or splits a file gathering several small
sessions, one file per session), with the load's manifest beside it. `commit_staged` then swaps in every
session whose staged row count matches its manifest row, with `loaders.bronze.partitions.swap_in`.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loaders.bronze.partitions import (
    STAGING,
    TRASH,
    dataset_dir,
    link_or_copy,
    partition_name,
    swap_in,
    write_parquet,
)

log = logging.getLogger(__name__)

MANIFEST_DIR = "_manifest"
SPLIT_WRITERS = 2


# --------------------------------------------------------------------------------------------------- staging


@dataclass(frozen=True)
class CommitResult:
    load_id: str
    partition: str
    rows: int
    committed: bool
    reason: str = ""


def staged_load_dir(root: Path, dataset: str, load_id: str) -> Path:
    return root / STAGING / dataset / f"load-{load_id}"


def read_file(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file as a table, read by its own reader.

    `pq.read_table` goes through pyarrow.dataset, whose import pulls in pandas (about 0.5 CPU-seconds,
    `loaders.flatfiles.arrays`); a flat-file load reads only whole single files, which need none of it.
    """
    with pq.ParquetFile(path) as handle:
        return handle.read(columns=columns)


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
        load_id = str(read_file(path, [load_column]).column(0)[0].as_py())
    load_dir = staged_load_dir(root, dataset, load_id)
    file_id = _job_file_id(path)
    key, constant = _constant_stat(meta, source_column)
    if constant and key is not None:
        target = (
            load_dir / partition_name(partition_column, partition_of(key)) / f"{load_id}-{file_id}.parquet"
        )
        link_or_copy(Path(path), target)
        return [target]
    pieces = split_by_column(read_file(path), source_column)
    out = [
        load_dir / partition_name(partition_column, partition_of(value)) / f"{load_id}-{file_id}-{n}.parquet"
        for n, (value, _) in enumerate(pieces)
    ]

    def write(target: Path, rows: pa.Table) -> None:
        tmp = target.with_name(f".{target.name}.tmp")
        write_parquet(rows, tmp)
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
    values = read_file(path, [load_column]).column(0)
    load_id = str(values[0].as_py())
    target = staged_load_dir(root, dataset, load_id) / MANIFEST_DIR / f"{_job_file_id(path)}.parquet"
    link_or_copy(Path(path), target)
    return target


# --------------------------------------------------------------------------------------------------- commit


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
        load_dir = staged_load_dir(root, dataset, load_id)
        expected: dict[str, int] = {}
        manifest_files = sorted((load_dir / MANIFEST_DIR).glob("*.parquet"))
        if manifest_files:
            columns = [manifest_partition, manifest_rows]
            manifest = pa.concat_tables(read_file(f, columns) for f in manifest_files)
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
