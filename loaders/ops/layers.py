"""Read-only probes of silver (DuckDB) and gold (Qlib provider dir) that gaps, validate and report share.

Silver relations are found by name in DuckDB's catalog rather than by a hard-coded schema, since dbt's
schema naming (`main_marts`, custom schemas, targets) is configuration.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from loaders.config import Settings, duckdb_config

if TYPE_CHECKING:
    import duckdb


class SilverUnavailable(RuntimeError):
    """The DuckDB file is missing or locked by a writer."""


def open_silver(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the silver database, or SilverUnavailable saying why not."""
    import duckdb

    path = settings.duckdb_path
    if not path.exists():
        raise SilverUnavailable(f"{path} does not exist (run `dbt build`)")
    try:
        return duckdb.connect(str(path), read_only=True, config=duckdb_config(settings.data_dir))
    except duckdb.Error as exc:
        raise SilverUnavailable(f"cannot open {path} read-only: {exc}") from exc


@dataclass(frozen=True)
class Relation:
    schema: str
    name: str
    columns: tuple[str, ...]

    @property
    def sql(self) -> str:
        return f'"{self.schema}"."{self.name}"'


def find_relation(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> Relation | None:
    """First of `names` present in the catalog (any schema) that has a `session_date` column."""
    for name in names:
        rows = con.execute(
            "select table_schema, column_name from information_schema.columns "
            "where table_name = ? order by table_schema, ordinal_position",
            [name],
        ).fetchall()
        by_schema: dict[str, list[str]] = {}
        for schema, column in rows:
            by_schema.setdefault(schema, []).append(column)
        for schema, columns in by_schema.items():
            if "session_date" in columns:
                return Relation(schema, name, tuple(columns))
    return None


def session_counts(
    con: duckdb.DuckDBPyConnection, relation: Relation, sessions: list[dt.date] | None = None
) -> dict[dt.date, tuple[int, int]]:
    """Session date -> (rows, distinct tickers or contracts) of a silver relation (only `sessions` if given)."""
    column = next((c for c in ("ticker", "contract_ticker") if c in relation.columns), None)
    tickers = f"count(distinct {column})" if column else "0"
    where = ""
    if sessions is not None:
        if not sessions:
            return {}
        where = " where session_date in (" + ", ".join(f"date '{d}'" for d in sessions) + ")"
    rows = con.execute(
        f"select cast(session_date as date), count(*), {tickers} from {relation.sql}{where} group by 1 order by 1"
    ).fetchall()
    return {day: (int(n), int(t)) for day, n, t in rows}


# ---- gold ---------------------------------------------------------------------------------------------


def gold_calendar(settings: Settings, freq: str) -> list[str]:
    """Lines of `calendars/<freq>.txt` (empty if absent)."""
    path = settings.gold_dir / "calendars" / f"{freq}.txt"
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def gold_calendar_dates(settings: Settings, freq: str) -> list[dt.date]:
    """Distinct dates of the gold calendar (minute timestamps collapse to their session date)."""
    seen: dict[dt.date, None] = {}
    for line in gold_calendar(settings, freq):
        seen[dt.date.fromisoformat(line[:10])] = None
    return list(seen)


def gold_instruments(settings: Settings, universe: str = "all") -> dict[str, tuple[str, str]]:
    """Symbol -> (first_date, last_date) from `instruments/<universe>.txt`."""
    path = settings.gold_dir / "instruments" / f"{universe}.txt"
    out: dict[str, tuple[str, str]] = {}
    if not path.exists():
        return out
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise ValueError(f"{path}:{lineno}: expected SYMBOL<TAB>first<TAB>last, got {line!r}")
        out[parts[0]] = (parts[1], parts[2])
    return out


def read_bin(path: Path) -> tuple[int, np.ndarray]:
    """A Qlib feature file: (start index into the calendar, float32 values)."""
    raw = np.fromfile(path, dtype="<f4")
    if raw.size == 0:
        raise ValueError(f"{path}: empty feature file")
    return int(raw[0]), raw[1:]


def gold_feature_dirs(settings: Settings) -> list[Path]:
    root = settings.gold_dir / "features"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def gold_day_sessions_with_data(settings: Settings, field: str = "close") -> set[dt.date]:
    """Calendar days on which at least one instrument has a finite `field` value."""
    calendar = gold_calendar_dates(settings, "day")
    has = np.zeros(len(calendar), dtype=bool)
    for folder in gold_feature_dirs(settings):
        path = folder / f"{field}.day.bin"
        if not path.exists():
            continue
        start, values = read_bin(path)
        stop = min(len(calendar), start + values.size)
        if start < stop:
            has[start:stop] |= np.isfinite(values[: stop - start])
    return {day for day, ok in zip(calendar, has, strict=True) if ok}
