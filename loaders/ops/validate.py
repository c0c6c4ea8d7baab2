"""`quantmini validate`: every bronze partition is readable by DuckDB, schemas agree across partitions,
silver agrees with bronze and gold agrees with silver. Problems are collected, never raised, so one run
reports all of them.

By default only bronze partitions that are new or changed since the last clean validation are read, and
silver and gold are compared on those partitions' sessions, so a daily run costs what the new day costs.
What was validated clean is recorded in `$QM_DATA_DIR/state/validate.json` (each partition's file names,
sizes and modification times); `--deep` checks all history and records it again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders.config import Settings, duckdb_config, load_settings
from loaders.datasets import DATASETS, feeding_gold, spec
from loaders.flatfiles import settings as ff
from loaders.landing import atomic_write
from loaders.ops.inventory import bronze_root, parquet_files, session_partitions

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
# the datasets the gold day and 1min providers are written from (gold findings are reported under them)
GOLD_DAY = feeding_gold("day")
GOLD_MINUTE = feeding_gold("1min")
FLOAT32_RTOL = 1e-5
STATE_VERSION = 1
#: the validate state's record of the gold health checks (last session checked, manifest tokens)
GOLD_HEALTH = "gold_health"
GOLD_HEALTH_DATASET = "stocks_daily"


@dataclass(frozen=True)
class Problem:
    layer: str  # bronze | silver | gold
    dataset: str
    where: str  # file, session or relation the problem is about
    message: str
    severity: str = "error"  # error (exit 1) | warning (reported, exit code unchanged)

    def to_json(self) -> dict[str, str]:
        return {
            "layer": self.layer,
            "dataset": self.dataset,
            "where": self.where,
            "message": self.message,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class Scope:
    """What an incremental run looks at for one dataset: the sessions of its new or changed partitions,
    and sessions whose partitions were removed (silver must no longer have them)."""

    sessions: frozenset[dt.date]
    removed: frozenset[dt.date] = frozenset()


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    bronze_counts: dict[str, dict[dt.date, tuple[int, int]]] = field(default_factory=dict)
    #: dataset -> Scope when only changed partitions were checked; absent for a deep check
    scopes: dict[str, Scope] = field(default_factory=dict)
    #: dataset -> what to record as validated if the dataset turns out clean
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, layer: str, dataset: str, where: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(layer, dataset, where, message, severity))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """No errors (warnings do not fail a validation)."""
        return not self.errors


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


def check_schemas(
    settings: Settings,
    dataset: str,
    files: list[Path],
    report: Report,
    reference: dict[str, str] | None = None,
    majority_out: dict[str, str] | None = None,
) -> set[Path]:
    """Every file has the dataset's majority schema; flat files also match the bronze column contract.

    `reference` is the majority schema recorded by an earlier validation: an incremental run compares
    its few new files with it rather than with each other. The schema used is copied into `majority_out`.
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
    majority = reference or dict(signature.most_common(1)[0][0])
    if majority_out is not None:
        majority_out.update(majority)
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


def _violations_sql(cols: set[str]) -> str:
    """Rows breaking the bronze row contract (the parser's rules, `ROW_VIOLATIONS_SQL`), as one sum."""
    if not {"open", "high", "low", "close", "volume", "transactions"} <= cols:
        return "sum(case when close is null or close <= 0 or high < low then 1 else 0 end)"
    rules = " or ".join(f"({rule})" for rule in ff.ROW_VIOLATIONS_SQL.values())
    return f"sum(case when {rules} then 1 else 0 end)"


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
               {_violations_sql(cols)},
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
            report.add(
                "bronze",
                dataset,
                where,
                f"{bad_price} rows break the bronze row contract "
                f"({', '.join(ff.ROW_VIOLATIONS_SQL)}; docs/ingestion.md)",
            )
    report.bronze_counts[dataset] = counts


def read_bronze(settings: Settings, dataset: str, files: list[Path], report: Report) -> None:
    """DuckDB reads every row of every file; unreadable files are named and the rest still checked."""
    import duckdb

    if not files:
        return
    con = duckdb.connect(config=duckdb_config(settings.data_dir))
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


def _partition_fingerprints(root: Path, files: list[Path]) -> dict[str, dict[str, list[int]]]:
    """Partition folder (relative to the dataset root) -> file name -> [size, mtime_ns]: stat calls only."""
    out: dict[str, dict[str, list[int]]] = {}
    for f in files:
        st = f.stat()
        out.setdefault(f.parent.relative_to(root).as_posix(), {})[f.name] = [st.st_size, st.st_mtime_ns]
    return out


def _session_of(partition: str) -> dt.date | None:
    from loaders.ops.inventory import SESSION_DIR

    match = SESSION_DIR.match(partition.rsplit("/", 1)[-1])
    return dt.date.fromisoformat(match.group(1)) if match else None


def check_bronze(
    settings: Settings, dataset: str, report: Report, previous: dict[str, Any] | None = None
) -> None:
    """Check the dataset's bronze files: all of them, or (given the `previous` validated state) only the
    partitions that are new or changed since, against the majority schema recorded then."""
    root = bronze_root(settings, dataset)
    files = parquet_files(root)
    current = _partition_fingerprints(root, files)
    old_parts: dict[str, Any] = (previous or {}).get("partitions", {})
    old_schemas: dict[str, dict[str, str]] = (previous or {}).get("schemas", {})
    changed = {p for p, fp in current.items() if previous is None or old_parts.get(p) != fp}
    schemas: dict[str, dict[str, str]] = {}
    if previous is not None:
        sessions = {_session_of(p) for p in changed}
        removed = {_session_of(p) for p in set(old_parts) - set(current)}
        report.scopes[dataset] = Scope(
            frozenset(d for d in sessions if d), frozenset(d for d in removed if d) - sessions
        )
    report.fingerprints[dataset] = {"partitions": current, "schemas": schemas}
    if not files:
        return
    for table, table_files in sorted(bronze_tables(root, files).items()):
        label = f"{dataset}/{table}" if table else dataset
        scoped = [f for f in table_files if f.parent.relative_to(root).as_posix() in changed]
        reference = old_schemas.get(table) if previous is not None else None
        schemas[table] = dict(reference or {})
        if previous is not None:
            report.checked.append(f"bronze/{label}: {len(scoped)} new or changed of {len(table_files)} files")
        else:
            report.checked.append(f"bronze/{label}: {len(table_files)} files")
        if not scoped:
            continue
        unreadable = check_schemas(settings, dataset, scoped, report, reference, schemas[table])
        read_bronze(settings, dataset, [f for f in scoped if f not in unreadable], report)


# ---- silver -------------------------------------------------------------------------------------------


def _list_days(days: list[dt.date], limit: int = 8) -> str:
    shown = ", ".join(d.isoformat() for d in days[:limit])
    return shown + (f" ... (+{len(days) - limit})" if len(days) > limit else "")


def check_silver(settings: Settings, report: Report) -> None:
    """Each flat-file dataset's silver relation has bronze's sessions and the same tickers per session."""
    from loaders.ops import layers

    removed = [d for d, scope in report.scopes.items() if scope.removed and d not in report.bronze_counts]
    datasets = [d for d in report.bronze_counts if report.bronze_counts[d]] + removed
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
            bronze = report.bronze_counts.get(dataset, {})
            # silver keeps the sessions `cleanup --bronze` removed (docs/operations.md, "Retention"):
            # those before bronze's first session (all of them once bronze is empty) are not extra
            on_disk = session_partitions(settings, dataset)
            retained_before = min(on_disk) if on_disk else dt.date.max
            scope = report.scopes.get(dataset)
            window = sorted(scope.sessions | scope.removed) if scope else None
            for relation in found:
                where = f"{relation.schema}.{relation.name}"
                try:
                    silver = layers.session_counts(con, relation, window)
                except Exception as exc:
                    report.add("silver", dataset, where, f"cannot read: {str(exc).splitlines()[0]}")
                    continue
                report.checked.append(
                    f"silver {where}: {len(silver)} sessions" + (" (new or changed)" if scope else "")
                )
                missing = sorted(set(bronze) - set(silver))
                extra = sorted(d for d in set(silver) - set(bronze) if d >= retained_before)
                retained = sum(1 for d in silver if d < retained_before)
                if retained:
                    report.checked.append(f"silver {where}: {retained} sessions kept after bronze retention")
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


def check_gold(settings: Settings, report: Report, sessions: list[dt.date] | None = None) -> None:
    """Gold calendar spans silver's sessions, instruments match silver's tickers, sampled values agree.

    With `sessions` (an incremental run) silver is read for those sessions only: their tickers must be
    instruments and the sample is drawn from them; symbols no longer in silver are left to `--deep`.
    """
    import numpy as np

    from loaders import calendar
    from loaders.gold.symbols import feature_dir_name, to_qlib_symbol
    from loaders.ops import layers

    if not settings.gold_dir.exists():
        if GOLD_DAY in report.bronze_counts:
            report.add("gold", GOLD_DAY, _rel(settings, settings.gold_dir), "gold directory missing")
        return
    try:
        con = layers.open_silver(settings)
    except layers.SilverUnavailable as exc:
        report.add("gold", GOLD_DAY, "silver", f"cannot compare gold with silver: {exc}")
        return
    try:
        mart = layers.find_relation(con, ("fct_stock_features_daily",))
        if mart is None:
            report.add("gold", GOLD_DAY, "catalog", "fct_stock_features_daily not found; cannot check gold")
            return
        where_sessions = (
            " where session_date in (" + ", ".join(f"date '{d}'" for d in sessions) + ")" if sessions else ""
        )
        first, last, tickers = con.execute(
            f"select min(session_date), max(session_date), count(distinct ticker) from {mart.sql}{where_sessions}"
        ).fetchone()
        if first is None:
            return
        cal = layers.gold_calendar(settings, "day")
        report.checked.append(f"gold calendars/day.txt: {len(cal)} sessions")
        cal_dates = [dt.date.fromisoformat(x[:10]) for x in cal]
        needed = sessions if sessions else calendar.sessions(first, last)
        missing = sorted(set(needed) - set(cal_dates))
        if missing:
            report.add(
                "gold",
                GOLD_DAY,
                "calendars/day.txt",
                f"{len(missing)} silver sessions missing: {_list_days(missing)}",
            )
        not_sessions = (
            sorted(set(cal_dates) - set(calendar.sessions(cal_dates[0], cal_dates[-1]))) if cal_dates else []
        )
        if not_sessions:
            report.add("gold", GOLD_DAY, "calendars/day.txt", f"non-NYSE dates: {_list_days(not_sessions)}")
        instruments = layers.gold_instruments(settings)
        silver_symbols = {
            to_qlib_symbol(t): (str(lo), str(hi))
            for t, lo, hi in con.execute(
                f"select ticker, min(session_date), max(session_date) from {mart.sql}{where_sessions} group by ticker"
            ).fetchall()
        }
        absent = sorted(set(silver_symbols) - set(instruments))
        extra = [] if sessions else sorted(set(instruments) - set(silver_symbols))
        if absent:
            report.add(
                "gold",
                GOLD_DAY,
                "instruments/all.txt",
                f"{len(absent)} silver tickers missing: {', '.join(absent[:8])}",
            )
        if extra:
            report.add(
                "gold",
                GOLD_DAY,
                "instruments/all.txt",
                f"{len(extra)} symbols not in silver: {', '.join(extra[:8])}",
            )
        if not cal_dates:
            return
        index = {d: i for i, d in enumerate(cal_dates)}
        sample = con.execute(
            f"select ticker, cast(session_date as date), adj_close from {mart.sql}{where_sessions} "
            f"{'and' if sessions else 'where'} adj_close is not null order by hash(ticker || cast(session_date as varchar)) limit {GOLD_SAMPLE}"
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
                GOLD_DAY,
                "features/*/close.day.bin",
                f"{len(mismatches)}/{len(sample)} sampled values disagree with silver, e.g. "
                + "; ".join(mismatches[:3]),
            )
    finally:
        con.close()


def check_gold_minute(settings: Settings, report: Report) -> None:
    """Every bronze minute session is in the gold 1min calendar (when a 1min provider was exported)."""
    from loaders.ops import layers

    minute_sessions = report.bronze_counts.get(GOLD_MINUTE)
    if not minute_sessions or not (settings.gold_dir / "calendars" / "1min.txt").exists():
        return
    in_gold = set(layers.gold_calendar_dates(settings, "1min"))
    report.checked.append(f"gold calendars/1min.txt: {len(in_gold)} sessions")
    missing = sorted(set(minute_sessions) - in_gold)
    if missing:
        report.add(
            "gold",
            GOLD_MINUTE,
            "calendars/1min.txt",
            f"{len(missing)} bronze minute sessions missing: {_list_days(missing)}",
        )


def check_gold_health(settings: Settings, report: Report, previous: dict[str, Any] | None = None) -> None:
    """Qlib-style health checks on the daily provider (loaders/ops/health.py states the severity rule):
    with `previous` (the last clean run's record), the sessions after it, and the whole history of the
    instruments gold wrote whole since; without, everything."""
    from loaders.ops import health

    root = settings.gold_dir
    if not (root / "calendars" / "day.txt").exists() or not (root / "instruments" / "all.txt").exists():
        return
    try:
        findings, checked = health.check_provider(root, previous=previous)
    except (OSError, ValueError) as exc:
        report.add("gold", GOLD_DAY, _rel(settings, root), f"health checks cannot read gold: {exc}")
        return
    report.fingerprints[GOLD_HEALTH] = checked
    scope = (
        f" (sessions after {previous['last_session']})" if previous and previous.get("last_session") else ""
    )
    report.checked.append(f"gold health{scope}: {len(findings)} finding(s)")
    by_check: dict[str, list[health.Finding]] = {}
    for finding in findings:
        by_check.setdefault(finding.check, []).append(finding)
    for check, items in sorted(by_check.items()):
        for f in items[: health.MAX_LISTED]:
            where = f"{f.ticker} {f.session}".strip()
            report.add("gold", GOLD_DAY, where, f"{check}: {f.message}", f.severity)
        if len(items) > health.MAX_LISTED:
            rest = items[health.MAX_LISTED :]
            report.add(
                "gold",
                GOLD_DAY,
                f"{len(rest)} more",
                f"{check}: {len(rest)} more, e.g. {rest[0].ticker} {rest[0].session}",
                rest[0].severity,
            )


# ---- command ------------------------------------------------------------------------------------------


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "state" / "validate.json"


def _load_state(settings: Settings) -> dict[str, Any]:
    """The recorded validated partitions per dataset; an unreadable or older-format file counts as none."""
    try:
        state = json.loads(state_path(settings).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        return {}
    return state.get("datasets") or {}


def _save_state(settings: Settings, report: Report, names: list[str]) -> None:
    """Record the datasets that validated clean; a dataset with a problem keeps its old record, so the
    partitions that caused it are checked again next time."""
    state = _load_state(settings)
    bad = {p.dataset for p in report.errors}  # warnings (e.g. a real price jump) stay warnings
    if "*" in bad:
        return
    for name in [*names, GOLD_HEALTH]:
        # the gold health findings are reported under stocks_daily
        if (GOLD_HEALTH_DATASET if name == GOLD_HEALTH else name) not in bad and name in report.fingerprints:
            state[name] = report.fingerprints[name]
    path = state_path(settings)
    atomic_write(path, json.dumps({"version": STATE_VERSION, "datasets": state}), durable=False)


def validate(
    settings: Settings,
    datasets: list[str] | None = None,
    *,
    silver: bool = True,
    gold: bool = True,
    deep: bool = False,
) -> Report:
    """Validate bronze, silver and gold. Only new or changed partitions (and their sessions downstream)
    unless `deep`; a run with both silver and gold checks records what it found clean."""
    from rich.progress import Progress

    report = Report()
    names = datasets or [n for n in DATASETS if parquet_files(settings.bronze_dir / n)]
    previous = {} if deep else _load_state(settings)
    with Progress(transient=True) as bar:
        task = bar.add_task("validating bronze", total=len(names))
        for name in names:
            bar.update(task, description=f"validating bronze/{name}")
            check_bronze(settings, name, report, previous.get(name))
            bar.advance(task)
    if silver:
        check_silver(settings, report)
    if gold and report.bronze_counts.get(GOLD_DAY):
        scope = report.scopes.get(GOLD_DAY)
        check_gold(settings, report, sorted(scope.sessions) if scope else None)
    if gold:
        check_gold_health(settings, report, previous.get(GOLD_HEALTH))
        check_gold_minute(settings, report)
    if silver and gold:
        _save_state(settings, report, names)
    return report


def validate_command(
    datasets: list[str] | None = None,
    *,
    silver: bool = True,
    gold: bool = True,
    deep: bool = False,
    json_path: Path | None = None,
) -> int:
    """Exit 0 when clean or only warnings were found, 1 when an error was found."""
    from rich.table import Table

    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    report = validate(settings, datasets, silver=silver, gold=gold, deep=deep)
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
    if not report.problems:
        console.print("[green]validate: no problems found[/green]")
        return 0
    table = Table(title=f"validate: {len(report.errors)} error(s), {len(report.warnings)} warning(s)")
    for col in ("severity", "layer", "dataset", "where", "problem"):
        table.add_column(col, overflow="fold")
    for p in report.problems:
        table.add_row(p.severity, p.layer, p.dataset, p.where, p.message)
    console.print(table)
    if report.ok:
        console.print("[yellow]validate: warnings only, no errors[/yellow]")
        return 0
    return 1
