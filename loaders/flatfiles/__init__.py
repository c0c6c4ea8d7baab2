"""dlt source for Polygon flat files: one resource per dataset yielding Arrow tables from landing files.

The resource yields a large file's rows in bounded batches (one Parquet file each, written once by dlt's
extract and hard-linked into bronze); small files (a daily file of a few thousand rows) are gathered into
shared extract files that the destination splits by session, so each costs no dlt job of its own. Last
comes the manifest: one row per fully parsed file. The bronze commit swaps in a session only when its
manifest row is there, so a file rejected half-way leaves bronze as it was. Resource state records every
loaded key with its ETag, size and row count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.storages.load_package import load_package_state

from loaders.flatfiles import arrays
from loaders.flatfiles import settings as ff
from loaders.flatfiles.parse import FlatFileError, prefetch, read_flatfile

#: the dlt source name, which is also the key of its state in the pipeline state
SOURCE_NAME = "flatfiles"


@dataclass(frozen=True)
class LandedFile:
    """A complete landing copy, ready to parse."""

    key: str
    session: dt.date
    etag: str
    size: int
    path: Path


@dataclass(frozen=True)
class FailedFile:
    """A key that could not be fetched (403/404 or retries exhausted)."""

    key: str
    session: dt.date
    error: str


@dataclass
class FileOutcome:
    key: str
    session: dt.date
    status: str  # parsed | rejected | failed
    rows: int = 0
    etag: str = ""
    size: int = 0
    error: str = ""


@dataclass
class Outcomes:
    """Filled by the resource while it runs; read by the command for the summary and the ledger."""

    by_key: dict[str, FileOutcome] = field(default_factory=dict)

    def add(self, outcome: FileOutcome) -> None:
        self.by_key[outcome.key] = outcome


MANIFEST_SCHEMA = pa.schema(
    [
        ("session_date", pa.date32()),
        ("source_key", pa.string()),
        ("source_etag", pa.string()),
        ("source_size", pa.int64()),
        ("rows", pa.int64()),
        ("load_id", pa.string()),
    ]
)


def _manifest(rows: list[tuple[LandedFile, int]], load_id: str) -> pa.Table:
    return pa.Table.from_arrays(
        [
            arrays.dates([item.session for item, _ in rows]),
            arrays.strings([item.key for item, _ in rows]),
            arrays.strings([item.etag for item, _ in rows]),
            arrays.int64s([item.size for item, _ in rows]),
            arrays.int64s([n for _, n in rows]),
            arrays.strings([load_id] * len(rows)),
        ],
        schema=MANIFEST_SCHEMA,
    )


def _parse_all(files: Iterable[LandedFile | FailedFile], load_id: str) -> Iterator[tuple[str, Any, Any]]:
    """Runs in the prefetch thread: ("batch", file, table) ..., then ("done", file, rows) or ("rejected", file, error)."""
    for item in files:
        if isinstance(item, FailedFile):
            yield "failed", item, item.error
            continue
        rows = 0
        try:
            for table in read_flatfile(item.path, item.key, item.etag, load_id):
                rows += table.num_rows
                yield "batch", item, table
        except FlatFileError as exc:
            yield "rejected", item, str(exc)
            continue
        yield "done", item, rows


@dataclass
class _SmallFiles:
    """Whole small files waiting to go out together as one extract file (one dlt job for many sessions)."""

    tables: list[pa.Table] = field(default_factory=list)
    rows: int = 0

    def add(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.rows += table.num_rows

    def take(self) -> pa.Table | None:
        if not self.tables:
            return None
        table = pa.concat_tables(self.tables).combine_chunks()
        self.tables, self.rows = [], 0
        return table


def _events(
    parsed: Iterable[tuple[str, Any, Any]], small_rows: int, group_rows: int
) -> Iterator[tuple[str, Any, Any]]:
    """Turn parse events into what the resource yields: ("data", None, table) and the per-file outcomes.

    A file whose first batch holds at most `small_rows` rows is held back until its end: if that was its
    only batch, it joins the pending small files (yielded together once `group_rows` is reached, or at the
    end); a rejected small file is dropped without ever reaching dlt. A larger file's batches go out as
    they come, one extract file each, so the destination can hard-link them.
    """
    pending = _SmallFiles()
    held: pa.Table | None = None  # first batch of the current file, while it may be its only one
    streaming = False  # the current file's batches go out directly
    for kind, item, payload in parsed:
        if kind == "batch":
            if held is None and not streaming and payload.num_rows <= small_rows:
                held = payload
                continue
            if held is not None:
                yield "data", None, held
                held = None
            streaming = True
            yield "data", None, payload
            continue
        if kind == "done" and held is not None:
            if pending.rows + held.num_rows > group_rows and (table := pending.take()) is not None:
                yield "data", None, table
            pending.add(held)
        held, streaming = None, False
        yield kind, item, payload
    if (table := pending.take()) is not None:
        yield "data", None, table


def flatfile_resource(
    dataset: ff.Dataset, files: Iterable[LandedFile | FailedFile], outcomes: Outcomes
) -> Any:
    """The dataset's resource; `files` may be a lazy iterator fed by concurrent downloads.

    Data goes out first; the manifest (one row per fully parsed file) goes out last as a single table, so
    a run costs a few dlt jobs however many sessions it loads.
    """

    @dlt.resource(name=dataset.name, table_name=dataset.name, write_disposition="append", max_table_nesting=0)
    def rows() -> Iterator[Any]:
        load_id = load_package_state()["load_id"]
        loaded: dict[str, list[Any]] = dlt.current.resource_state().setdefault("files", {})
        parsed: list[tuple[LandedFile, int]] = []
        events = _events(prefetch(_parse_all(files, load_id), depth=2), ff.SMALL_FILE_ROWS, ff.GROUP_ROWS)
        for kind, item, payload in events:
            if kind == "data":
                yield payload
            elif kind == "done":
                parsed.append((item, payload))
            elif kind == "rejected":
                outcomes.add(FileOutcome(item.key, item.session, "rejected", etag=item.etag, error=payload))
            else:
                outcomes.add(FileOutcome(item.key, item.session, "failed", error=payload))
        if parsed:
            yield dlt.mark.with_hints(
                _manifest(parsed, load_id),
                dlt.mark.make_hints(table_name=dataset.manifest_table, write_disposition="append"),
                create_table_variant=True,
            )
        for item, count in parsed:
            loaded[item.key] = [item.etag, item.size, count]
            outcomes.add(FileOutcome(item.key, item.session, "parsed", count, item.etag, item.size))

    return rows


@dlt.source(name=SOURCE_NAME, max_table_nesting=0)
def flatfiles_source(
    dataset: ff.Dataset, files: Iterable[LandedFile | FailedFile], outcomes: Outcomes
) -> Any:
    """Polygon flat files of one dataset, already in landing (see `loaders.flatfiles.commands`)."""
    return flatfile_resource(dataset, files, outcomes)


def loaded_files(pipeline: dlt.Pipeline, dataset: ff.Dataset) -> dict[str, list[Any]]:
    """key -> [etag, size, rows] from the pipeline's resource state (empty on a fresh pipeline).

    The same `files` entry the resource keeps in `dlt.current.resource_state()`, read from outside a run
    through dlt's state API (the source's state is keyed by its name).
    """
    pipeline.activate()
    source = dlt.current.source_state(SOURCE_NAME)
    return dict(dlt.current.resource_state(dataset.name, source).get("files", {}))
