"""Cheap facts about what is on disk: bronze partitions, Parquet row counts from footers, bytes.

Nothing here reads column data, so `status` and `gaps` stay fast on years of minute bars.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from loaders.config import Settings
from loaders.ops.datasets import DATASETS, spec

SESSION_DIR = re.compile(r"^session_date=(\d{4}-\d{2}-\d{2})$")


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

    @property
    def first(self) -> dt.date | None:
        return self.sessions[0] if self.sessions else None

    @property
    def last(self) -> dt.date | None:
        return self.sessions[-1] if self.sessions else None


def summarize(settings: Settings, dataset: str) -> BronzeSummary:
    """Files, rows (footers), bytes and session partitions of one bronze dataset."""
    root = bronze_root(settings, dataset)
    files = parquet_files(root)
    sessions = list(session_partitions(settings, dataset)) if spec(dataset).kind == "flatfile" else []
    return BronzeSummary(dataset, len(files), parquet_rows(files), tree_bytes(root), sessions)


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
