"""Cheap facts about what is on disk: bronze partitions, Parquet row counts from footers, bytes.

Nothing here reads column data, so `status` and `gaps` stay fast on years of minute bars.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loaders.config import Settings
from loaders.datasets import DATASETS, spec

SESSION_DIR = re.compile(r"^session_date=(\d{4}-\d{2}-\d{2})$")
DATE_PARTITION_DIR = re.compile(r"^(\w+)=(\d{4}-\d{2}-\d{2})$")


def _visible(path: Path, root: Path) -> bool:
    """Skip temp/hidden entries (`.tmp-*`, `_delta_log`, ...) a writer may leave while swapping folders."""
    return not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def parquet_files(root: Path) -> list[Path]:
    """Every visible Parquet file below `root`, sorted."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*.parquet") if p.is_file() and _visible(p, root))


def bronze_root(settings: Settings, dataset: str) -> Path:
    spec(dataset)
    return settings.bronze_dir / dataset


def session_partitions(settings: Settings, dataset: str) -> dict[dt.date, list[Path]]:
    """Session date -> Parquet files of that `session_date=` folder; folders without files are absent."""
    root = bronze_root(settings, dataset)
    out: dict[dt.date, list[Path]] = {}
    if not root.is_dir():
        return out
    for child in root.iterdir():
        match = SESSION_DIR.match(child.name)
        if not match or not child.is_dir():
            continue
        files = sorted(
            p for p in child.glob("*.parquet") if p.is_file() and not p.name.startswith((".", "_"))
        )
        if files:
            out[dt.date.fromisoformat(match.group(1))] = files
    return dict(sorted(out.items()))


def parquet_rows(files: Iterable[Path]) -> int:
    """Row count from Parquet footers only."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def tree_bytes(root: Path) -> int:
    """Bytes of every regular file under `root` (0 if it does not exist)."""
    if not root.exists():
        return 0
    if root.is_file():
        return root.stat().st_size
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def landing_root(settings: Settings, dataset: str) -> Path:
    """Where a dataset's raw downloads land: Polygon's key layout for flat files, one folder per REST dataset."""
    s = spec(dataset)
    if s.kind == "flatfile" and s.s3_prefix:
        return settings.landing_dir / "flatfiles" / s.s3_prefix
    return settings.landing_dir / "rest" / dataset


@dataclass(frozen=True)
class BronzeSummary:
    dataset: str
    files: int
    rows: int
    bytes: int
    sessions: list[dt.date]
    # REST datasets: the date partition column (e.g. `published_date`), its first and last value, and
    # the rows of each bronze table (fundamentals has two); flat-file datasets use `sessions` instead
    span_column: str | None = None
    span_first: dt.date | None = None
    span_last: dt.date | None = None
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def first(self) -> dt.date | None:
        return self.sessions[0] if self.sessions else None

    @property
    def last(self) -> dt.date | None:
        return self.sessions[-1] if self.sessions else None


def summarize(settings: Settings, dataset: str) -> BronzeSummary:
    """Files, rows (footers), bytes and session partitions of one bronze dataset; for REST datasets also
    the span of their date partitions and the rows per table, from folder names and footers only."""
    root = bronze_root(settings, dataset)
    files = parquet_files(root)
    if spec(dataset).kind == "flatfile":
        sessions = list(session_partitions(settings, dataset))
        return BronzeSummary(dataset, len(files), parquet_rows(files), tree_bytes(root), sessions)
    tables: dict[str, int] = {}
    columns: dict[str, list[dt.date]] = {}
    for path in files:
        parts = path.relative_to(root).parts[:-1]
        table = "/".join(p for p in parts if "=" not in p) or dataset
        tables[table] = tables.get(table, 0) + parquet_rows([path])
        for part in parts:
            match = DATE_PARTITION_DIR.match(part)
            if match:
                columns.setdefault(match.group(1), []).append(dt.date.fromisoformat(match.group(2)))
    span_column = max(columns, key=lambda c: len(columns[c])) if columns else None
    dates = columns.get(span_column, []) if span_column else []
    return BronzeSummary(
        dataset,
        len(files),
        sum(tables.values()),
        tree_bytes(root),
        [],
        span_column=span_column,
        span_first=min(dates) if dates else None,
        span_last=max(dates) if dates else None,
        tables=dict(sorted(tables.items())),
    )


def datasets_on_disk(settings: Settings) -> list[str]:
    """Known datasets that have at least one Parquet file in bronze, in the canonical order."""
    return [name for name in DATASETS if parquet_files(settings.bronze_dir / name)]


def iter_months(start: dt.date, end: dt.date) -> Iterator[tuple[dt.date, dt.date]]:
    """Calendar-month chunks [first, last] covering [start, end], clipped to it."""
    cursor = start
    while cursor <= end:
        nxt = dt.date(cursor.year + (cursor.month == 12), cursor.month % 12 + 1, 1)
        yield cursor, min(end, nxt - dt.timedelta(days=1))
        cursor = nxt
