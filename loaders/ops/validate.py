"""`quantmini validate`: every bronze partition is readable by DuckDB, schemas agree across partitions,
silver agrees with bronze and gold agrees with silver. Problems are collected, never raised, so one run
reports all of them."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders.config import Settings, load_settings
from loaders.ops.datasets import DATASETS, spec
from loaders.ops.inventory import bronze_root, parquet_files

# Bronze column contract of the flat-file datasets (docs/architecture.md), as pyarrow type strings.
FLATFILE_CONTRACT: dict[str, tuple[str, ...]] = {
    "ticker": ("string", "large_string"),
    "volume": ("double",),
    "open": ("double",),
    "high": ("double",),
    "low": ("double",),
    "close": ("double",),
    "window_start": ("timestamp[us, tz=UTC]", "timestamp[ns, tz=UTC]"),
    "transactions": ("int64",),
}
# silver relations that summarise bronze (a ticker may drop out), so only their sessions are compared
SESSION_LEVEL_ONLY = frozenset({"fct_stock_minute_features_daily"})
GOLD_SAMPLE = 200
FLOAT32_RTOL = 1e-5


@dataclass(frozen=True)
class Problem:
    layer: str  # bronze | silver | gold
    dataset: str
    where: str  # file, session or relation the problem is about
    message: str

    def to_json(self) -> dict[str, str]:
        return {"layer": self.layer, "dataset": self.dataset, "where": self.where, "message": self.message}


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    bronze_counts: dict[str, dict[dt.date, tuple[int, int]]] = field(default_factory=dict)

    def add(self, layer: str, dataset: str, where: str, message: str) -> None:
        self.problems.append(Problem(layer, dataset, where, message))

    @property
    def ok(self) -> bool:
        return not self.problems


def _rel(settings: Settings, path: Path) -> str:
    try:
        return str(path.relative_to(settings.data_dir))
    except ValueError:
        return str(path)


def _sql_list(files: list[Path]) -> str:
    return "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"


# ---- bronze -------------------------------------------------------------------------------------------


def logical_type(arrow_type: Any) -> str:
    """The type a reader sees: dictionary encoding and large/small offsets are storage details.

    Writers pick dictionary index widths per file (int8 for a few distinct values, int32 for more), so
    comparing physical types would flag files that every engine reads identically.
    """
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_large_binary(arrow_type):
        return "binary"
    return str(arrow_type)


def check_schemas(settings: Settings, dataset: str, files: list[Path], report: Report) -> set[Path]:
    """Every file has the dataset's majority schema; flat files also match the bronze column contract.

    Returns the files whose footer cannot be read (the data scan skips them).
    """
    import pyarrow.parquet as pq

    schemas: dict[Path, dict[str, str]] = {}
    unreadable: set[Path] = set()
    for f in files:
        try:
            schema = pq.read_schema(f)
        except Exception as exc:
            report.add("bronze", dataset, _rel(settings, f), f"unreadable Parquet footer: {exc}")
            unreadable.add(f)
            continue
        schemas[f] = {
            name: logical_type(schema.field(name).type) for name in schema.names if name != "session_date"
        }
    if not schemas:
        return unreadable
    signature = Counter(tuple(sorted(s.items())) for s in schemas.values())
    majority = dict(signature.most_common(1)[0][0])
    for f, s in schemas.items():
        if s == majority:
            continue
        diffs = [f"missing {c}" for c in majority if c not in s]
        diffs += [f"extra {c}:{t}" for c, t in s.items() if c not in majority]
        diffs += [f"{c} is {s[c]}, elsewhere {t}" for c, t in majority.items() if c in s and s[c] != t]
        report.add(
            "bronze",
            dataset,
            _rel(settings, f),
            "schema differs from the other partitions: " + "; ".join(diffs),
        )
    if spec(dataset).kind == "flatfile":
        for column, allowed in FLATFILE_CONTRACT.items():
            if column not in majority:
                report.add(
                    "bronze",
                    dataset,
                    f"bronze/{dataset}",
                    f"column {column} missing (contract: {allowed[0]})",
                )
            elif majority[column] not in allowed:
                report.add(
                    "bronze",
                    dataset,
                    f"bronze/{dataset}",
                    f"column {column} is {majority[column]}, contract says {allowed[0]}",
                )
    return unreadable


def _scan(con: Any, dataset: str, files: list[Path], cols: set[str], report: Report) -> None:
    """One DuckDB pass over `files`: per-session counts, duplicates, key/folder agreement, sane prices."""
    source = f"read_parquet({_sql_list(files)}, hive_partitioning = true, union_by_name = true)"
    if spec(dataset).kind != "flatfile" or not {"ticker", "window_start", "session_date"} <= cols:
        # every column is touched so corrupt pages surface, not only footers
        con.execute(f"select count(*), sum(hash(*columns(*))) from {source}").fetchall()
        return
    key_check = (
        "sum(case when _source_key is null or _source_key not like "
        "'%' || strftime(session_date, '%Y-%m-%d') || '.csv.gz' then 1 else 0 end)"
        if "_source_key" in cols
        else "0"
    )
    rows = con.execute(
        f"""
        select session_date, count(*), count(distinct ticker),
               count(*) - count(distinct (ticker, window_start)),
               {key_check},
               sum(case when close is null or close < 0 or high < low then 1 else 0 end),
               sum(hash(*columns(*)))
        from {source} group by session_date order by session_date
        """
    ).fetchall()
    counts: dict[dt.date, tuple[int, int]] = {}
    for day, n, tickers, dups, bad_key, bad_price, _ in rows:
        day = dt.date.fromisoformat(str(day))
        counts[day] = (int(n), int(tickers))
        where = f"session_date={day}"
        if dups:
            report.add("bronze", dataset, where, f"{dups} duplicate (ticker, window_start) rows")
        if bad_key:
            report.add("bronze", dataset, where, f"{bad_key} rows whose _source_key is for another date")
        if bad_price:
            report.add("bronze", dataset, where, f"{bad_price} rows with null/negative close or high < low")
    report.bronze_counts[dataset] = counts


def read_bronze(settings: Settings, dataset: str, files: list[Path], report: Report) -> None:
    """DuckDB reads every row of every file; unreadable files are named and the rest still checked."""
    import duckdb

    if not files:
        return
    con = duckdb.connect()
    try:
        cols = {
            r[0]
            for r in con.execute(
                f"describe select * from read_parquet({_sql_list(files[:1])}, hive_partitioning = true)"
            ).fetchall()
        }
        try:
            _scan(con, dataset, files, cols, report)
            return
        except duckdb.Error as exc:
            whole = str(exc).splitlines()[0]
        good: list[Path] = []
        for f in files:
            try:
                con.execute(
                    f"select count(*), sum(hash(*columns(*))) from read_parquet({_sql_list([f])})"
                ).fetchall()
                good.append(f)
            except duckdb.Error as file_exc:
                report.add(
                    "bronze",
                    dataset,
                    _rel(settings, f),
                    f"DuckDB cannot read: {str(file_exc).splitlines()[0]}",
                )
        if len(good) == len(files):
            report.add(
                "bronze", dataset, f"bronze/{dataset}", f"DuckDB cannot read the dataset as a whole: {whole}"
            )
        elif good:
            _scan(con, dataset, good, cols, report)
    except duckdb.Error as exc:
        report.add("bronze", dataset, f"bronze/{dataset}", f"DuckDB cannot read: {str(exc).splitlines()[0]}")
    finally:
        con.close()


def bronze_tables(root: Path, files: list[Path]) -> dict[str, list[Path]]:
    """Group a dataset's files by table: the folder above the Hive partition folders.

    Most datasets are one table (`bronze/<dataset>/<col>=<value>/*.parquet`); some hold several
    (`bronze/fundamentals/financials/...`, `bronze/fundamentals/financial_filings/...`), each with its own
    schema, so schemas are compared within a table only.
    """
    tables: dict[str, list[Path]] = {}
    for f in files:
        table_dir = f.parent.parent if "=" in f.parent.name else f.parent
        name = table_dir.relative_to(root).as_posix() if table_dir != root else ""
        tables.setdefault(name, []).append(f)
    return tables


def check_bronze(settings: Settings, dataset: str, report: Report) -> None:
    root = bronze_root(settings, dataset)
    files = parquet_files(root)
    if not files:
        return
    for table, table_files in sorted(bronze_tables(root, files).items()):
        label = f"{dataset}/{table}" if table else dataset
        report.checked.append(f"bronze/{label}: {len(table_files)} files")
        unreadable = check_schemas(settings, dataset, table_files, report)
        read_bronze(settings, dataset, [f for f in table_files if f not in unreadable], report)


# ---- silver -------------------------------------------------------------------------------------------


def _list_days(days: list[dt.date], limit: int = 8) -> str:
    shown = ", ".join(d.isoformat() for d in days[:limit])
    return shown + (f" ... (+{len(days) - limit})" if len(days) > limit else "")


def check_silver(settings: Settings, report: Report) -> None:
    """Each flat-file dataset's silver relation has bronze's sessions and the same tickers per session."""
    from loaders.ops import layers

    datasets = [d for d in report.bronze_counts if report.bronze_counts[d]]
    if not datasets:
        return
    try:
        con = layers.open_silver(settings)
    except layers.SilverUnavailable as exc:
        report.add("silver", "*", str(settings.duckdb_path.name), str(exc))
        return
    try:
        for dataset in datasets:
            relations = spec(dataset).silver_relations
            found = [r for r in (layers.find_relation(con, (name,)) for name in relations) if r is not None]
            if not found:
                report.add("silver", dataset, "catalog", f"no silver relation among {', '.join(relations)}")
                continue
            bronze = report.bronze_counts[dataset]
            for relation in found:
                where = f"{relation.schema}.{relation.name}"
                try:
                    silver = layers.session_counts(con, relation)
                except Exception as exc:
                    report.add("silver", dataset, where, f"cannot read: {str(exc).splitlines()[0]}")
                    continue
                report.checked.append(f"silver {where}: {len(silver)} sessions")
                missing = sorted(set(bronze) - set(silver))
                extra = sorted(set(silver) - set(bronze))
                if missing:
                    report.add(
                        "silver",
                        dataset,
                        where,
                        f"{len(missing)} bronze sessions missing: {_list_days(missing)}",
                    )
                if extra:
                    report.add(
                        "silver", dataset, where, f"{len(extra)} sessions not in bronze: {_list_days(extra)}"
                    )
                if {"ticker", "contract_ticker"} & set(
                    relation.columns
                ) and relation.name not in SESSION_LEVEL_ONLY:
                    differ = [d for d in sorted(set(bronze) & set(silver)) if bronze[d][1] != silver[d][1]]
                    if differ:
                        d = differ[0]
                        report.add(
                            "silver",
                            dataset,
                            where,
                            f"{len(differ)} sessions with a different ticker count than bronze, "
                            f"first {d}: bronze {bronze[d][1]}, silver {silver[d][1]}",
                        )
    finally:
        con.close()


# ---- gold ---------------------------------------------------------------------------------------------


def check_gold(settings: Settings, report: Report) -> None:
    """Gold calendar spans silver's sessions, instruments match silver's tickers, sampled values agree."""
    import numpy as np

    from loaders import calendar
    from loaders.gold.symbols import feature_dir_name, to_qlib_symbol
    from loaders.ops import layers

    if not settings.gold_dir.exists():
        if "stocks_daily" in report.bronze_counts:
            report.add("gold", "stocks_daily", _rel(settings, settings.gold_dir), "gold directory missing")
        return
    try:
        con = layers.open_silver(settings)
    except layers.SilverUnavailable as exc:
        report.add("gold", "stocks_daily", "silver", f"cannot compare gold with silver: {exc}")
        return
    try:
        mart = layers.find_relation(con, ("fct_stock_features_daily",))
        if mart is None:
            report.add(
                "gold", "stocks_daily", "catalog", "fct_stock_features_daily not found; cannot check gold"
            )
            return
        first, last, tickers = con.execute(
            f"select min(session_date), max(session_date), count(distinct ticker) from {mart.sql}"
        ).fetchone()
        if first is None:
            return
        cal = layers.gold_calendar(settings, "day")
        report.checked.append(f"gold calendars/day.txt: {len(cal)} sessions")
        cal_dates = [dt.date.fromisoformat(x[:10]) for x in cal]
        needed = calendar.sessions(first, last)
        missing = sorted(set(needed) - set(cal_dates))
        if missing:
            report.add(
                "gold",
                "stocks_daily",
                "calendars/day.txt",
                f"{len(missing)} silver sessions missing: {_list_days(missing)}",
            )
        not_sessions = (
            sorted(set(cal_dates) - set(calendar.sessions(cal_dates[0], cal_dates[-1]))) if cal_dates else []
        )
        if not_sessions:
            report.add(
                "gold", "stocks_daily", "calendars/day.txt", f"non-NYSE dates: {_list_days(not_sessions)}"
            )
        instruments = layers.gold_instruments(settings)
        silver_symbols = {
            to_qlib_symbol(t): (str(lo), str(hi))
            for t, lo, hi in con.execute(
                f"select ticker, min(session_date), max(session_date) from {mart.sql} group by ticker"
            ).fetchall()
        }
        absent = sorted(set(silver_symbols) - set(instruments))
        extra = sorted(set(instruments) - set(silver_symbols))
        if absent:
            report.add(
                "gold",
                "stocks_daily",
                "instruments/all.txt",
                f"{len(absent)} silver tickers missing: {', '.join(absent[:8])}",
            )
        if extra:
            report.add(
                "gold",
                "stocks_daily",
                "instruments/all.txt",
                f"{len(extra)} symbols not in silver: {', '.join(extra[:8])}",
            )
        if not cal_dates:
            return
        index = {d: i for i, d in enumerate(cal_dates)}
        sample = con.execute(
            f"select ticker, cast(session_date as date), adj_close from {mart.sql} "
            f"where adj_close is not null order by hash(ticker || cast(session_date as varchar)) limit {GOLD_SAMPLE}"
        ).fetchall()
        cache: dict[str, tuple[int, Any] | None] = {}
        mismatches: list[str] = []
        for ticker, day, value in sample:
            folder = feature_dir_name(to_qlib_symbol(ticker))
            if folder not in cache:
                path = settings.gold_dir / "features" / folder / "close.day.bin"
                cache[folder] = layers.read_bin(path) if path.exists() else None
            got = cache[folder]
            if got is None:
                mismatches.append(f"{ticker}: features/{folder}/close.day.bin missing")
                continue
            start, values = got
            pos = index.get(day, -1) - start
            if not 0 <= pos < values.size:
                mismatches.append(f"{ticker} {day}: outside the feature file's span")
            elif not np.isclose(values[pos], np.float32(value), rtol=FLOAT32_RTOL, equal_nan=False):
                mismatches.append(f"{ticker} {day}: gold close {values[pos]!r}, silver adj_close {value!r}")
        report.checked.append(f"gold features: {len(sample)} sampled closes")
        if mismatches:
            report.add(
                "gold",
                "stocks_daily",
                "features/*/close.day.bin",
                f"{len(mismatches)}/{len(sample)} sampled values disagree with silver, e.g. "
                + "; ".join(mismatches[:3]),
            )
    finally:
        con.close()


def check_gold_minute(settings: Settings, report: Report) -> None:
    """Every bronze minute session is in the gold 1min calendar (when a 1min provider was exported)."""
    from loaders.ops import layers

    minute_sessions = report.bronze_counts.get("stocks_minute")
    if not minute_sessions or not (settings.gold_dir / "calendars" / "1min.txt").exists():
        return
    in_gold = set(layers.gold_calendar_dates(settings, "1min"))
    report.checked.append(f"gold calendars/1min.txt: {len(in_gold)} sessions")
    missing = sorted(set(minute_sessions) - in_gold)
    if missing:
        report.add(
            "gold",
            "stocks_minute",
            "calendars/1min.txt",
            f"{len(missing)} bronze minute sessions missing: {_list_days(missing)}",
        )


# ---- command ------------------------------------------------------------------------------------------


def validate(
    settings: Settings, datasets: list[str] | None = None, *, silver: bool = True, gold: bool = True
) -> Report:
    from rich.progress import Progress

    report = Report()
    names = datasets or [n for n in DATASETS if parquet_files(settings.bronze_dir / n)]
    with Progress(transient=True) as bar:
        task = bar.add_task("validating bronze", total=len(names))
        for name in names:
            bar.update(task, description=f"validating bronze/{name}")
            check_bronze(settings, name, report)
            bar.advance(task)
    if silver:
        check_silver(settings, report)
    if gold and report.bronze_counts.get("stocks_daily"):
        check_gold(settings, report)
    if gold:
        check_gold_minute(settings, report)
    return report


def validate_command(
    datasets: list[str] | None = None,
    *,
    silver: bool = True,
    gold: bool = True,
    json_path: Path | None = None,
) -> int:
    """Exit 0 when clean, 1 when a problem was found."""
    import json

    from rich.console import Console
    from rich.table import Table

    console = Console()
    settings = load_settings()
    report = validate(settings, datasets, silver=silver, gold=gold)
    for line in report.checked:
        console.print(f"[dim]checked {line}[/dim]")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(
            json.dumps(
                {
                    "ok": report.ok,
                    "checked": report.checked,
                    "problems": [p.to_json() for p in report.problems],
                },
                indent=2,
            )
            + "\n"
        )
    if report.ok:
        console.print("[green]validate: no problems found[/green]")
        return 0
    table = Table(title=f"validate: {len(report.problems)} problem(s)")
    for col in ("layer", "dataset", "where", "problem"):
        table.add_column(col, overflow="fold")
    for p in report.problems:
        table.add_row(p.layer, p.dataset, p.where, p.message)
    console.print(table)
    return 1
