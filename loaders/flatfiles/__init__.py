"""dlt source for Polygon flat files: one resource per dataset yielding Arrow tables from landing files.

The resource yields each file's rows in bounded batches (one Parquet file each, written once by dlt's
extract), then one manifest row for the file. The bronze commit swaps in a session only when its manifest
row is there, so a file rejected half-way leaves bronze as it was. Resource state records every loaded key
with its ETag, size and row count.
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

from loaders.flatfiles import settings as ff
from loaders.flatfiles.helpers import FlatFileError, prefetch, read_flatfile


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


def _manifest_row(item: LandedFile, rows: int, load_id: str) -> pa.Table:
    return pa.table(
        {
            "session_date": [item.session],
            "source_key": [item.key],
            "source_etag": [item.etag],
            "source_size": [item.size],
            "rows": [rows],
            "load_id": [load_id],
        },
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


def flatfile_resource(
    dataset: ff.FlatFileDataset, files: Iterable[LandedFile | FailedFile], outcomes: Outcomes
) -> Any:
    """The dataset's resource; `files` may be a lazy iterator fed by concurrent downloads."""

    @dlt.resource(name=dataset.name, table_name=dataset.name, write_disposition="append", max_table_nesting=0)
    def rows() -> Iterator[Any]:
        load_id = load_package_state()["load_id"]
        loaded: dict[str, list[Any]] = dlt.current.resource_state().setdefault("files", {})
        for kind, item, payload in prefetch(_parse_all(files, load_id), depth=2):
            if kind == "batch":
                yield payload
            elif kind == "done":
                yield dlt.mark.with_hints(
                    _manifest_row(item, payload, load_id),
                    dlt.mark.make_hints(table_name=dataset.manifest_table, write_disposition="append"),
                    create_table_variant=True,
                )
                loaded[item.key] = [item.etag, item.size, payload]
                outcomes.add(FileOutcome(item.key, item.session, "parsed", payload, item.etag, item.size))
            elif kind == "rejected":
                outcomes.add(FileOutcome(item.key, item.session, "rejected", etag=item.etag, error=payload))
            else:
                outcomes.add(FileOutcome(item.key, item.session, "failed", error=payload))

    return rows


@dlt.source(name="flatfiles", max_table_nesting=0)
def flatfiles_source(
    dataset: ff.FlatFileDataset, files: Iterable[LandedFile | FailedFile], outcomes: Outcomes
) -> Any:
    """Polygon flat files of one dataset, already in landing (see `loaders.flatfiles.commands`)."""
    return flatfile_resource(dataset, files, outcomes)


def loaded_files(pipeline: dlt.Pipeline, dataset: ff.FlatFileDataset) -> dict[str, list[Any]]:
    """key -> [etag, size, rows] from the pipeline's resource state (empty on a fresh pipeline)."""
    sources = pipeline.state.get("sources", {})
    resources = sources.get("flatfiles", {}).get("resources", {})
    return dict(resources.get(dataset.name, {}).get("files", {}))
