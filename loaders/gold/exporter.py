"""Read the silver marts from DuckDB and write the Qlib provider directory (day and 1min).

Field conventions are Qlib's: prices are split-adjusted (raw x ``$factor``), ``$volume`` is raw volume /
``$factor``, ``$change`` is the adjusted close over the previous session's adjusted close minus one. The
daily calendar is the NYSE sessions from the first to the last session in silver; the 1min calendar is
the regular-hours minutes of the sessions that have minute bars, as naive America/New_York times
(``YYYY-MM-DD HH:MM:SS``, the form Qlib's ``region="us"`` minute grid assumes).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from filelock import FileLock

from loaders import calendar as nyse
from loaders.config import duckdb_config
from loaders.gold.writer import (
    Block,
    Calendar,
    ExportError,
    FreqStats,
    SeriesPlan,
    clear_freq,
    make_block,
    read_manifest,
    write_freq,
    write_planned,
)

log = logging.getLogger(__name__)

DAILY_RELATION = "fct_stock_features_daily"
MINUTE_RELATION = "stg_polygon__stocks_minute"
DAY_INSTRUMENTS = "all"
MINUTE_INSTRUMENTS = "all_1min"

#: Qlib field -> column of fct_stock_features_daily it is read from
DAILY_FIELDS: dict[str, str] = {
    "open": "adj_open",
    "high": "adj_high",
    "low": "adj_low",
    "close": "adj_close",
    "volume": "adj_volume",
    "vwap": "adj_vwap",
    "factor": "adj_factor",
    "change": "change",
    "vwap_minute": "vwap_source",
}
#: fields whose value is computed from their column rather than copied: ``$vwap_minute`` is 1 where
#: ``$vwap`` is the VWAP of the session's minute bars, 0 where it is the (high + low + close) / 3
#: fallback of the day bar (Qlib fields are numbers, so the source is a code)
FIELD_EXPRESSIONS: dict[str, str] = {
    "vwap_minute": "case vwap_source when 'minute_bars' then 1 when 'daily_typical_price' then 0 end",
}
MINUTE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "factor")
DEFAULT_FEATURES: tuple[str, ...] = ("return_1d", "rsi_14")
#: point-in-time short data (fct_short_data_daily), exported as daily fields when that mart exists
SHORT_RELATION = "fct_short_data_daily"
SHORT_FIELDS: tuple[str, ...] = ("short_interest", "days_to_cover", "short_volume_ratio")
#: the identity mapping (old ticker -> current ticker per date span), written as ticker_history.txt
TICKER_HISTORY_RELATION = "int_ticker_history"
TICKER_HISTORY_FILE = "ticker_history.txt"
#: rows per Arrow batch streamed from silver by a daily export
FETCH_BATCH_ROWS = 256 * 1024
_FEATURE_NAME = re.compile(r"[a-z][a-z0-9_]*")


def parse_features(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Extra silver columns to export, from a comma-separated string or a list; None gives the default."""
    if value is None:
        return DEFAULT_FEATURES
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        name = str(item).strip().strip("[]'\" ")  # a YAML list rendered by dbt arrives as "['a', 'b']"
        if not name:
            continue
        if not _FEATURE_NAME.fullmatch(name):
            raise ExportError(
                f"feature {name!r}: Qlib lower-cases field file names, so features must be lower-case "
                "identifiers ([a-z][a-z0-9_]*)"
            )
        if name in DAILY_FIELDS or name in names:
            raise ExportError(f"feature {name!r} is listed twice or repeats a base field")
        names.append(name)
    return tuple(names)


def find_relation(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """Quoted ``schema.name`` of a table or view in ``main`` or a dbt ``main_*`` schema, or None."""
    rows = con.execute(
        "select table_schema from information_schema.tables "
        "where table_name = ? and table_catalog = current_database() "
        "and (table_schema = 'main' or table_schema like 'main\\_%' escape '\\') order by table_schema",
        [name],
    ).fetchall()
    if not rows:
        return None
    if len(rows) > 1:
        schemas = ", ".join(r[0] for r in rows)
        raise ExportError(f"relation {name!r} exists in several schemas ({schemas}); drop the stale one")
    return f'"{rows[0][0]}"."{name}"'


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    return [
        row[0]
        for row in con.execute(f"select column_name from (describe select * from {relation})").fetchall()
    ]


def _require(con: duckdb.DuckDBPyConnection, relation: str, label: str, needed: Sequence[str]) -> None:
    have = set(_columns(con, relation))
    missing = [c for c in needed if c not in have]
    if missing:
        raise ExportError(f"{label}: missing column(s) {', '.join(missing)} (has: {', '.join(sorted(have))})")


def day_calendar(first: dt.date, last: dt.date) -> Calendar:
    days = nyse.sessions(first, last)
    keys = np.array(days, dtype="datetime64[D]").astype(np.int64)
    return Calendar("day", keys, [d.isoformat() for d in days])


def minute_calendar(first: dt.date, last: dt.date) -> Calendar:
    parts = [nyse.regular_minutes(day).as_unit("ns") for day in nyse.sessions(first, last)]
    index = pd.DatetimeIndex(np.concatenate([p.asi8 for p in parts]) if parts else [], tz="UTC")
    keys = index.asi8.astype(np.int64)
    labels = list(index.tz_convert(nyse.NEW_YORK).strftime("%Y-%m-%d %H:%M:%S"))
    return Calendar("1min", keys, labels)


def _tickers(table: pa.Table, label: str) -> pa.ChunkedArray:
    col = table.column("ticker")
    if col.null_count:
        row = pc.index(pc.is_null(col), True).as_py()
        raise ExportError(f"{label}: row {row} has a NULL ticker")
    return col


def _numeric(expression: str) -> str:
    """An SQL value as a double with NULL as NaN, so Arrow hands it over without a validity mask."""
    return f"coalesce(cast({expression} as double), 'nan'::double)"


def _matrix(table: pa.Table, names: Sequence[str]) -> np.ndarray:
    """(fields, rows) float32 values, one row per field file.

    The query returns doubles without NULLs, so every chunk is a zero-copy numpy view and the cast to
    float32 (round to nearest, as ``astype("<f")`` in Qlib's dump) happens in the one copy into place.
    """
    out = np.empty((len(names), table.num_rows), dtype=np.float32)
    for j, name in enumerate(names):
        at = 0
        for chunk in table.column(name).chunks:
            out[j, at : at + len(chunk)] = chunk.to_numpy(zero_copy_only=chunk.null_count == 0)
            at += len(chunk)
    return out


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, label: str) -> pa.Table:
    try:
        return con.execute(sql).to_arrow_table()
    except duckdb.Error as exc:  # e.g. a feature column that is not numeric
        raise ExportError(f"{label}: {exc}") from exc


def field_sql(field: str, column: str) -> str:
    """The SQL expression a field's values come from (its column, or the expression computing it)."""
    return FIELD_EXPRESSIONS.get(field, f'"{column}"')


def with_short_data(daily_relation: str, short_relation: str) -> str:
    """The daily relation with the short-data fields of the same ticker and session (NULL where none)."""
    columns = ", ".join(f'short_data."{c}"' for c in SHORT_FIELDS)
    return (
        f"(select daily.*, {columns} from {daily_relation} as daily left join {short_relation} as short_data "
        "on daily.ticker = short_data.ticker and daily.session_date = short_data.session_date)"
    )


def daily_query(relation: str, features: Sequence[str]) -> str:
    """The one query a daily export reads silver with: ticker, session date and one column per field."""
    pairs = [*DAILY_FIELDS.items(), *((f, f) for f in features)]
    select = ", ".join(f'{_numeric(field_sql(f, c))} as "{f}"' for f, c in pairs)
    return f"select ticker, session_date, {select} from {relation}"


def read_daily(
    con: duckdb.DuckDBPyConnection, relation: str, features: Sequence[str]
) -> tuple[Block, Calendar] | None:
    """Daily rows as a block on the NYSE calendar spanning the first to the last silver session."""
    label = f"{DAILY_RELATION} ({relation})"
    fields = (*DAILY_FIELDS, *features)
    _require(con, relation, label, ["ticker", "session_date", *DAILY_FIELDS.values(), *features])
    table = _fetch(con, daily_query(relation, features), label)
    if table.num_rows == 0:
        return None
    dates = table.column("session_date")
    if dates.null_count:
        row = pc.index(pc.is_null(dates), True).as_py()
        raise ExportError(
            f"{label}: row {row} (ticker {table.column('ticker')[row]}) has a NULL session_date"
        )
    keys = dates.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.datetime64(int(keys.min()), "D").item()
    last = np.datetime64(int(keys.max()), "D").item()
    calendar = day_calendar(first, last)
    block = make_block(_tickers(table, label), keys, _matrix(table, fields), fields, calendar, label)
    return block, calendar


#: the mart column saying when the dbt run that wrote a row started (NULL: before the column existed)
BUILT_AT = "built_at"


def _literal(value: dt.datetime) -> str:
    """A timestamp literal DuckDB compares with the column as it is typed (with an offset when aware)."""
    return "'" + value.isoformat(sep=" ") + "'"


def _built_after(watermark: str | None) -> str:
    """The rows written after the export that recorded `watermark` (None: it saw none with a time)."""
    return f"{BUILT_AT} is not null" if watermark is None else f"{BUILT_AT} > {watermark}"


def _spans(
    con: duckdb.DuckDBPyConnection, relation: str, label: str, only: Sequence[str] | None = None
) -> dict[str, tuple[int, int, int]]:
    """Per ticker (all, or `only` those), (first day, last day, rows), from the ticker and date columns."""
    if only is not None and not only:
        return {}
    view = f"quantmini_only_{uuid.uuid4().hex[:8]}"
    where = "" if only is None else f"where ticker in (select ticker from {view})"
    if only is not None:
        con.register(view, pa.table({"ticker": pa.array(list(only), pa.string())}))
    try:
        table = _fetch(
            con,
            f"select ticker, min(session_date) as first_date, max(session_date) as last_date, "
            f"count(*) as row_count, count(*) - count(session_date) as null_dates "
            f"from {relation} {where} group by ticker",
            label,
        )
    finally:
        if only is not None:
            con.unregister(view)
    _check_keys(table, label)
    first, last = _day_keys(table.column("first_date")), _day_keys(table.column("last_date"))
    counts = table.column("row_count").to_numpy()
    return {
        str(t): (int(first[i]), int(last[i]), int(counts[i]))
        for i, t in enumerate(table.column("ticker").to_pylist())
    }


def _check_keys(table: pa.Table, label: str) -> None:
    tickers = table.column("ticker")
    if tickers.null_count:
        row = pc.index(pc.is_null(tickers), True).as_py()
        raise ExportError(f"{label}: {table.column('row_count')[row]} row(s) have a NULL ticker")
    nulls = table.column("null_dates").to_numpy()
    if nulls.any():
        raise ExportError(f"{label}: ticker {tickers[int(np.flatnonzero(nulls)[0])]} has a NULL session_date")


def plan_daily(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    features: Sequence[str],
    previous: dict[str, Any],
    *,
    mart: str | None = None,
    short_relation: str | None = None,
) -> tuple[SeriesPlan, Calendar] | None:
    """Per ticker, what silver holds (span, rows) and whether the rows up to the session the previous
    export ended at are still the ones it wrote, worked out in the database: no row is fetched to find
    out what changed.

    `relation` is what the export reads (the mart, joined with short data when there is some), `mart`
    the daily mart itself (default: `relation`), `previous` the manifest's entry of the last daily
    export ({} for a full export). With a `built_at` column in the mart and a previous export that
    recorded the newest `built_at` it consumed, only the rows written after that are read (`_plan_built`):
    a ticker none of whose rows were written since is unchanged, one whose new rows all come after its
    last exported session is appended, any other is rewritten. Otherwise (a mart without the column,
    the first export after a manifest of an older version) one aggregate hashes every row
    (`_plan_fingerprint`). The short-data fields come from another mart, rebuilt whole by every dbt
    run, so their rows are compared by a per-ticker hash of that mart's exported columns."""
    mart = mart or relation
    label = f"{DAILY_RELATION} ({mart})"
    _require(con, relation, label, ["ticker", "session_date", *DAILY_FIELDS.values(), *features])
    symbols: dict[str, Any] = previous.get("symbols") or {}
    stamped = BUILT_AT in _columns(con, mart)
    by_built_at = (
        stamped and bool(symbols) and "built_at" in previous and all("count" in e for e in symbols.values())
    )
    watermark: str | None = None
    new_rows: str | None = None
    notes: list[str] = []
    fingerprints: list[str | None]
    if by_built_at:
        planned = _plan_built(con, mart, label, symbols, previous["built_at"])
        if planned is None:
            return None
        tickers, first, last, counts, kept, notes, watermark = planned
        fingerprints = [None] * len(tickers)
        new_rows = _built_after(previous["built_at"])
    elif stamped and not symbols:  # a full export: spans only, the next export reads built_at
        spans = _spans(con, mart, label)
        if not spans:
            return None
        tickers = sorted(spans)
        first = np.array([spans[t][0] for t in tickers], dtype=np.int64)
        last = np.array([spans[t][1] for t in tickers], dtype=np.int64)
        counts = np.array([spans[t][2] for t in tickers], dtype=np.int64)
        kept, fingerprints = [False] * len(tickers), [None] * len(tickers)
    else:
        # no built_at in the mart, or the first export since it has one (the manifest recorded hashes)
        found = _plan_fingerprint(con, relation, features, label, symbols)
        if found is None:
            return None
        tickers, first, last, counts, fingerprints, prefix = found
        kept = [
            t in symbols and symbols[t].get("rows") is not None and symbols[t]["rows"] == prefix[i]
            for i, t in enumerate(tickers)
        ]
        if symbols:
            why = "once: the last export recorded no built_at" if stamped else "the mart has no built_at"
            notes.append(f"change detection: a hash of every row ({why})")
        if stamped:  # record fingerprints only while they are what the next export compares
            fingerprints = [None] * len(tickers)
    if stamped:
        if not by_built_at:
            newest = con.execute(f"select max({BUILT_AT}) from {mart}").fetchone()[0]
            watermark = None if newest is None else _literal(newest)
        extra = {"built_at": watermark}
    else:
        extra = {}
    shorts: list[str | None] = [None] * len(tickers)
    if short_relation is not None:
        shorts, short_prefix = _short_hashes(con, short_relation, tickers, symbols)
        if by_built_at:  # a hash of every row covers the short fields; built_at does not
            kept = [
                k and symbols[t].get("short") == short_prefix[i]
                for i, (t, k) in enumerate(zip(tickers, kept, strict=True))
            ]
    calendar = day_calendar(
        np.datetime64(int(first.min()), "D").item(), np.datetime64(int(last.max()), "D").item()
    )
    entries = [
        {k: v for k, v in (("rows", fingerprints[i]), ("short", shorts[i])) if v is not None}
        for i in range(len(tickers))
    ]
    plan = SeriesPlan(
        tickers, first, last, counts, np.array(kept, dtype=bool), entries, extra, notes, new_rows
    )
    return plan, calendar


def _plan_fingerprint(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    features: Sequence[str],
    label: str,
    symbols: dict[str, Any],
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[str | None], list[str | None]] | None:
    """One aggregate over every row: per ticker its span, rows, the sum of a hash of every row's exported
    values (independent of row order, changed by any changed, added or removed row) and the same up to
    the session the previous export ended at."""
    fields = (*DAILY_FIELDS, *features)
    names = [t for t, entry in symbols.items() if entry.get("rows") is not None]
    exported = pa.table(
        {
            "ticker": pa.array(names, pa.string()),
            "last_date": pa.array([int(symbols[t]["last"]) for t in names], pa.int32()).cast(pa.date32()),
        }
    )
    view = f"quantmini_exported_{uuid.uuid4().hex[:8]}"
    values = ", ".join(f'"{f}"' for f in fields)
    rows = f"select ticker, session_date, hash(session_date, {values}) as row_hash from ({daily_query(relation, features)})"
    con.register(view, exported)
    try:
        summary = _fetch(
            con,
            f"""
            select
                r.ticker,
                min(r.session_date) as first_date,
                max(r.session_date) as last_date,
                count(*) as row_count,
                count(*) - count(r.session_date) as null_dates,
                cast(sum(r.row_hash) as varchar) as rows_hash,
                cast(sum(r.row_hash) filter (where r.session_date <= p.last_date) as varchar) as prefix_hash
            from ({rows}) as r
            left join {view} as p on r.ticker = p.ticker
            group by r.ticker
            order by r.ticker
            """,
            label,
        )
    finally:
        con.unregister(view)
    if summary.num_rows == 0:
        return None
    _check_keys(summary, label)
    return (
        [str(t) for t in summary.column("ticker").to_pylist()],
        _day_keys(summary.column("first_date")),
        _day_keys(summary.column("last_date")),
        summary.column("row_count").to_numpy().astype(np.int64),
        summary.column("rows_hash").to_pylist(),
        summary.column("prefix_hash").to_pylist(),
    )


def _plan_built(
    con: duckdb.DuckDBPyConnection, mart: str, label: str, symbols: dict[str, Any], watermark: str | None
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, list[bool], list[str], str | None] | None:
    """Change detection from the rows written after the previous export (`built_at` > its watermark).

    Incremental dbt runs rewrite only changed rows (appended to the table, so DuckDB's and Parquet's
    min/max statistics on `built_at` let the scan skip every older row group). Per ticker with such
    rows: all after its last exported session is an append (span and rows follow from the manifest and
    the new rows), any other is rewritten and its span is counted exactly. A deletion leaves no row to
    find: the table's row count (kept in its metadata, no scan) must then equal the rows the manifest
    and the new rows account for; when it does not, one aggregate over the ticker and date columns
    gives every ticker's exact span and rows, and a ticker whose rows up to its last exported session
    are fewer than exported is rewritten (one whose rows are all gone is removed)."""
    changed = _fetch(
        con,
        f"select ticker, min(session_date) as first_date, max(session_date) as last_date, "
        f"count(*) as row_count, count(*) - count(session_date) as null_dates, max({BUILT_AT}) as newest "
        f"from {mart} where {_built_after(watermark)} group by ticker",
        label,
    )
    _check_keys(changed, label)
    newest = pc.max(changed.column("newest")).as_py()
    new_watermark = watermark if newest is None else _literal(newest)
    c_first, c_last = _day_keys(changed.column("first_date")), _day_keys(changed.column("last_date"))
    c_count = changed.column("row_count").to_numpy()
    touched = {
        str(t): (int(c_first[i]), int(c_last[i]), int(c_count[i]))
        for i, t in enumerate(changed.column("ticker").to_pylist())
    }
    # tickers whose rows the manifest and the new rows cannot account for: new or restated
    exact = sorted(
        t for t, (first, _, _) in touched.items() if t not in symbols or first <= symbols[t]["last"]
    )
    spans = _spans(con, mart, label, exact)
    expected = {t: (e["first"], e["last"], int(e["count"])) for t, e in symbols.items()}
    for t, (_, last, rows) in touched.items():
        if t in symbols and t not in spans:
            first, _, count = expected[t]
            expected[t] = (first, last, count + rows)
    expected.update(spans)
    total = con.execute(f"select count(*) from {mart}").fetchone()[0]
    notes = [
        f"change detection: {int(c_count.sum())} row(s) of {len(touched)} ticker(s) written since the last export"
    ]
    if total != sum(v[2] for v in expected.values()):
        # rows were deleted (a ticker-session gone from a re-loaded session): count every ticker
        spans = _spans(con, mart, label)
        notes.append(
            f"{sum(v[2] for v in expected.values()) - total:+d} row(s) unaccounted for: every ticker's rows counted"
        )
        expected = spans
    if not expected:
        return None
    tickers = sorted(expected)
    kept = []
    for t in tickers:
        old = symbols.get(t)
        if old is None or t in exact:
            kept.append(False)
        elif t in touched:  # only new sessions: the rows up to the exported one must all be there
            kept.append(expected[t][2] - touched[t][2] == int(old["count"]) if t in spans else True)
        else:
            kept.append(expected[t][2] == int(old["count"]) and expected[t][1] == old["last"])
    first = np.array([expected[t][0] for t in tickers], dtype=np.int64)
    last = np.array([expected[t][1] for t in tickers], dtype=np.int64)
    counts = np.array([expected[t][2] for t in tickers], dtype=np.int64)
    return tickers, first, last, counts, kept, notes, new_watermark


def _short_hashes(
    con: duckdb.DuckDBPyConnection, relation: str, tickers: Sequence[str], symbols: dict[str, Any]
) -> tuple[list[str | None], list[str | None]]:
    """Per ticker, the sum of a hash of each short-data row's exported values, of all rows and of the
    rows up to the previously exported last session (None where it has none)."""
    names = [t for t in symbols]
    exported = pa.table(
        {
            "ticker": pa.array(names, pa.string()),
            "last_date": pa.array([int(symbols[t]["last"]) for t in names], pa.int32()).cast(pa.date32()),
        }
    )
    view = f"quantmini_exported_{uuid.uuid4().hex[:8]}"
    values = ", ".join(f's."{c}"' for c in SHORT_FIELDS)
    con.register(view, exported)
    try:
        rows = con.execute(
            f"select s.ticker, cast(sum(hash(s.session_date, {values})) as varchar), "
            f"cast(sum(hash(s.session_date, {values})) filter (where s.session_date <= p.last_date) as varchar) "
            f"from {relation} as s left join {view} as p on s.ticker = p.ticker group by s.ticker"
        ).fetchall()
    finally:
        con.unregister(view)
    found = {t: (whole, prefix) for t, whole, prefix in rows}
    return [found.get(t, (None, None))[0] for t in tickers], [found.get(t, (None, None))[1] for t in tickers]


def _day_keys(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)


def daily_fetcher(
    con: duckdb.DuckDBPyConnection, relation: str, features: Sequence[str], new_rows: str | None = None
) -> Any:
    """`fetch(wanted)` for `write_planned`: the rows of the wanted tickers (after their key, if given),
    streamed from the database ordered by ticker. `new_rows` is a condition every row an append needs
    meets (`built_at` after the previous export): appends are then fetched by a query of their own
    that reads only those rows' row groups, since old sessions are spread over the whole table."""
    label = f"{DAILY_RELATION} ({relation})"
    epoch = dt.date(1970, 1, 1)

    def query(wanted: list[tuple[str, int | None]], source: str) -> Any:
        after = [dt.date(1, 1, 1) if key is None else epoch + dt.timedelta(days=key) for _, key in wanted]
        table = pa.table(
            {
                "ticker": pa.array([t for t, _ in wanted], pa.string()),
                "after_date": pa.array(after, pa.date32()),
            }
        )
        view = f"quantmini_wanted_{uuid.uuid4().hex[:8]}"
        # a constant lower bound lets the scan skip the row groups of older sessions when only appends
        # are wanted and the table is laid out by session
        sql = (
            f"select d.* from ({daily_query(source, features)}) as d "
            f"join {view} as w on d.ticker = w.ticker and d.session_date > w.after_date "
            f"where d.session_date > date '{min(after).isoformat()}' "
            "order by d.ticker"
        )
        con.register(view, table)
        try:
            try:
                reader = con.execute(sql).to_arrow_reader(FETCH_BATCH_ROWS)
            except duckdb.Error as exc:
                raise ExportError(f"{label}: {exc}") from exc
            yield from reader
        finally:
            con.unregister(view)

    def fetch(wanted: list[tuple[str, int | None]]) -> Any:
        if new_rows is None:
            yield from query(wanted, relation)
            return
        # each ticker's rows stay together: whole tickers first, then the appended ones
        whole = [w for w in wanted if w[1] is None]
        appended = [w for w in wanted if w[1] is not None]
        if whole:
            yield from query(whole, relation)
        if appended:
            yield from query(appended, f"(select * from {relation} where {new_rows})")

    return fetch


def read_minute(
    con: duckdb.DuckDBPyConnection, minute_relation: str, daily_relation: str
) -> tuple[Block, Calendar, list[str]] | None:
    """Regular-hours minute bars adjusted with the daily factor of their session."""
    label = f"{MINUTE_RELATION} ({minute_relation})"
    _require(
        con,
        minute_relation,
        label,
        ["ticker", "bar_start_at", "session_date", "open", "high", "low", "close", "volume"],
    )
    notes: list[str] = []
    unmatched = con.execute(
        f"select count(*), any_value(m.ticker), any_value(m.session_date) from {minute_relation} m "
        f"anti join {daily_relation} d on m.ticker = d.ticker and m.session_date = d.session_date"
    ).fetchone()
    if unmatched and unmatched[0]:
        notes.append(
            f"skipped {unmatched[0]} minute bars without a daily row to adjust them "
            f"(e.g. {unmatched[1]} {unmatched[2]})"
        )
    adjusted = {
        "open": "m.open * d.adj_factor",
        "high": "m.high * d.adj_factor",
        "low": "m.low * d.adj_factor",
        "close": "m.close * d.adj_factor",
        "volume": "m.volume / d.adj_factor",
        "factor": "d.adj_factor",
    }
    select = ", ".join(f"{_numeric(adjusted[name])} as {name}" for name in MINUTE_FIELDS)
    table = _fetch(
        con,
        f"""
        select m.ticker, m.bar_start_at, m.session_date, {select}
        from {minute_relation} m
        join {daily_relation} d on m.ticker = d.ticker and m.session_date = d.session_date
        """,
        label,
    )
    if table.num_rows == 0:
        return None
    stamps = table.column("bar_start_at")
    if stamps.null_count:
        row = pc.index(pc.is_null(stamps), True).as_py()
        raise ExportError(f"{label}: a row of ticker {table.column('ticker')[row]} has a NULL bar_start_at")
    if stamps.type.tz is None:
        raise ExportError(f"{label}: bar_start_at must be a UTC timestamp (timestamptz), got {stamps.type}")
    keys = stamps.cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
    days = table.column("session_date").cast(pa.date32()).cast(pa.int32()).to_numpy(zero_copy_only=False)
    calendar = minute_calendar(
        np.datetime64(int(days.min()), "D").item(), np.datetime64(int(days.max()), "D").item()
    )
    pos = np.minimum(np.searchsorted(calendar.keys, keys), len(calendar.keys) - 1)
    regular = calendar.keys[pos] == keys
    if not regular.all():
        notes.append(f"skipped {int((~regular).sum())} minute bars outside regular trading hours")
        table = table.filter(pa.array(regular))
        keys = keys[regular]
    if table.num_rows == 0:
        return None
    block = make_block(
        _tickers(table, label), keys, _matrix(table, MINUTE_FIELDS), MINUTE_FIELDS, calendar, label
    )
    return block, calendar, notes


def export_qlib(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    *,
    daily_relation: str,
    minute_relation: str | None,
    features: Sequence[str] = DEFAULT_FEATURES,
    full: bool = False,
    minute: bool = True,
    short_relation: str | None = None,
    ticker_history_relation: str | None = None,
) -> list[FreqStats]:
    """Export day (and 1min) data from the given relations into the provider dir ``root``.

    With ``short_relation`` (fct_short_data_daily), its ``SHORT_FIELDS`` become daily fields too; with
    ``ticker_history_relation`` (int_ticker_history), ``ticker_history.txt`` lists the old names.
    """
    mart = daily_relation
    if short_relation is not None:
        daily_relation = with_short_data(daily_relation, short_relation)
        features = (*features, *(f for f in SHORT_FIELDS if f not in features))
    root.parent.mkdir(parents=True, exist_ok=True)
    # one exporter at a time per directory: dbt build and `quantmini export qlib` may overlap
    with FileLock(str(root.parent / f".{root.name}.lock")):
        _repair_build(root)
        previous = read_manifest(root).get("day") or {}
        planned = plan_daily(
            con, daily_relation, features, {} if full else previous, mart=mart, short_relation=short_relation
        )
        if planned is None:
            raise ExportError(
                f"{DAILY_RELATION} ({daily_relation}) has no rows: ingest stocks_daily and run dbt build"
            )
        fields = (*DAILY_FIELDS, *features)
        daily = DailyExport(
            planned[0],
            planned[1],
            fields,
            daily_fetcher(con, daily_relation, features, planned[0].new_rows),
            daily_relation,
        )
        reasons = ["--full"] if full else _full_reasons(previous, planned[1], fields)
        if not reasons:
            stats = _export_locked(con, root, daily, minute_relation, daily_relation, full, minute)
            write_ticker_history(con, root, ticker_history_relation)
            return stats
        # a full export is built beside the provider dir and swapped in whole: a failure half-way leaves
        # the last good export as it was (and readable), never a mix
        build = _build_dir(root)
        shutil.rmtree(build, ignore_errors=True)
        try:
            stats = _export_locked(con, build, daily, minute_relation, daily_relation, True, minute)
            (build / BUILD_COMPLETE).write_text("complete\n", encoding="utf-8")
            _swap_build(root)
        finally:
            shutil.rmtree(build, ignore_errors=True)
        if not full:
            stats[0].mode, stats[0].notes = "full", [f"full export: {reasons[0]}", *stats[0].notes]
        write_ticker_history(con, root, ticker_history_relation)
        return stats


@dataclass(frozen=True)
class DailyExport:
    """The daily frequency to write: silver's plan, the calendar, the fields and how to fetch rows."""

    plan: SeriesPlan
    calendar: Calendar
    fields: tuple[str, ...]
    fetch: Any
    relation: str


def _full_reasons(previous: dict[str, Any], calendar: Calendar, fields: Sequence[str]) -> list[str]:
    """Why the daily provider cannot be updated in place (empty: an incremental export is possible)."""
    if not previous:
        return ["no previous export"]
    if previous.get("calendar_start") != calendar.labels[0]:
        return ["calendar start moved"]
    if previous.get("fields") != list(fields):
        return ["field list changed"]
    return []


BUILD_COMPLETE = ".complete"


def _build_dir(root: Path) -> Path:
    return root.parent / f".{root.name}.build"


def _swap_build(root: Path) -> None:
    """Replace `root` by the complete build beside it (two renames), then delete the old version."""
    build = _build_dir(root)
    trash = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
    if root.exists():
        os.rename(root, trash)
    os.rename(build, root)
    (root / BUILD_COMPLETE).unlink(missing_ok=True)
    shutil.rmtree(trash, ignore_errors=True)


def _repair_build(root: Path) -> None:
    """Finish the swap of a complete build a killed export left; delete an incomplete one and old copies."""
    build = _build_dir(root)
    if (build / BUILD_COMPLETE).exists() and not root.exists():
        _swap_build(root)
    shutil.rmtree(build, ignore_errors=True)
    for old in root.parent.glob(f".{root.name}.old-*"):
        if root.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:  # killed between its two renames, before the build was complete: put the old one back
            os.rename(old, root)


def write_ticker_history(con: duckdb.DuckDBPyConnection, root: Path, relation: str | None) -> None:
    """``OLD<TAB>CURRENT<TAB>from<TAB>until`` (Qlib names, ``until`` empty while current) per renamed span."""
    from loaders.gold.symbols import to_qlib_symbol

    path = root / TICKER_HISTORY_FILE
    rows = []
    if relation is not None:
        rows = con.execute(
            f"select ticker, current_ticker, valid_from_date, valid_until_date from {relation} "
            "where ticker <> current_ticker order by current_ticker, valid_from_date, ticker"
        ).fetchall()
    if not rows:
        path.unlink(missing_ok=True)
        return
    text = "".join(
        f"{to_qlib_symbol(old)}\t{to_qlib_symbol(new)}\t{start}\t{end or ''}\n"
        for old, new, start, end in rows
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _export_locked(
    con: duckdb.DuckDBPyConnection,
    root: Path,
    daily: Any,
    minute_relation: str | None,
    daily_relation: str,
    full: bool,
    minute: bool,
) -> list[FreqStats]:
    root.mkdir(parents=True, exist_ok=True)
    stats = [
        write_planned(
            root,
            daily.plan,
            daily.calendar,
            daily.fields,
            DAY_INSTRUMENTS,
            full,
            daily.fetch,
            f"{DAILY_RELATION} ({daily.relation})",
        )
    ]
    if minute:
        found = read_minute(con, minute_relation, daily_relation) if minute_relation else None
        if found is None:
            clear_freq(root, "1min", MINUTE_INSTRUMENTS)
            stats.append(
                FreqStats(freq="1min", mode="skipped", notes=["no regular-hours minute bars in silver"])
            )
        else:
            block, calendar, notes = found
            minute_stats = write_freq(root, block, calendar, MINUTE_INSTRUMENTS, full)
            minute_stats.notes.extend(notes)
            stats.append(minute_stats)
    for item in stats:
        for note in item.notes:
            log.info("%s: %s", item.freq, note)
    return stats


def export_duckdb_file(
    duckdb_path: Path,
    root: Path,
    *,
    features: Sequence[str] = DEFAULT_FEATURES,
    full: bool = False,
    minute: bool = True,
) -> list[FreqStats]:
    """Open the silver DuckDB file read-only, find the marts by name and export them."""
    if not duckdb_path.exists():
        raise ExportError(f"silver database {duckdb_path} does not exist: run dbt build first")
    try:
        con = duckdb.connect(str(duckdb_path), read_only=True, config=duckdb_config(Path(duckdb_path).parent))
    except duckdb.IOException as exc:
        raise ExportError(
            f"cannot open {duckdb_path} read-only (is dbt build still running?): {exc}"
        ) from exc
    try:
        daily = find_relation(con, DAILY_RELATION)
        if daily is None:
            raise ExportError(f"{duckdb_path} has no relation {DAILY_RELATION}: run dbt build first")
        minute_rel = find_relation(con, MINUTE_RELATION) if minute else None
        return export_qlib(
            con,
            root,
            daily_relation=daily,
            minute_relation=minute_rel,
            features=features,
            full=full,
            minute=minute,
            short_relation=find_relation(con, SHORT_RELATION),
            ticker_history_relation=find_relation(con, TICKER_HISTORY_RELATION),
        )
    finally:
        con.close()
