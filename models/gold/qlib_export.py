"""Gold: write the Qlib provider directory as part of `dbt build`, after the marts it reads.

Referencing the marts puts this model after them in the DAG; the model's table is a one-row-per-
frequency summary of what the export did (mode, symbols, files appended or rewritten). The export
itself is `loaders.gold`, the same code `quantmini export qlib` runs.
"""

from __future__ import annotations

import pyarrow as pa


def _flag(value, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def model(dbt, session):
    dbt.config(materialized="table")
    from loaders.config import load_settings
    from loaders.gold.exporter import export_qlib, parse_features
    from loaders.gold.writer import FreqStats

    daily = dbt.ref("fct_stock_features_daily")
    minute = dbt.ref("stg_polygon__stocks_minute")
    short = dbt.ref("fct_short_data_daily")
    history = dbt.ref("int_ticker_history")
    features = parse_features(dbt.config.meta_get("qlib_features"))
    include_minute = _flag(dbt.config.meta_get("qlib_minute"), True)
    full = _flag(dbt.config.meta_get("qlib_full_export"), False)

    daily_relation = f"({daily.sql_query()})"
    if session.sql(f"select 1 from {daily_relation} limit 1").fetchone() is None:
        # nothing loaded yet is a stage of the lake, not a failure: leave gold as it is and say so
        stats = [
            FreqStats(
                freq="day",
                mode="skipped",
                notes=[
                    "fct_stock_features_daily has no rows yet (ingest stocks_daily first): nothing exported"
                ],
            )
        ]
    else:
        stats = export_qlib(
            session,
            load_settings().gold_dir,
            daily_relation=daily_relation,
            minute_relation=f"({minute.sql_query()})",
            features=features,
            full=full,
            minute=include_minute,
            short_relation=f"({short.sql_query()})",
            ticker_history_relation=f"({history.sql_query()})",
        )
    return pa.table(
        {
            "freq": pa.array([s.freq for s in stats], pa.string()),
            "export_mode": pa.array([s.mode for s in stats], pa.string()),
            "symbols": pa.array([s.symbols for s in stats], pa.int64()),
            "calendar_length": pa.array([s.calendar_length for s in stats], pa.int64()),
            "rows": pa.array([s.rows for s in stats], pa.int64()),
            "symbols_written": pa.array([s.written for s in stats], pa.int64()),
            "symbols_appended": pa.array([s.appended for s in stats], pa.int64()),
            "symbols_rewritten": pa.array([s.rewritten for s in stats], pa.int64()),
            "symbols_unchanged": pa.array([s.unchanged for s in stats], pa.int64()),
            "symbols_removed": pa.array([s.removed for s in stats], pa.int64()),
            "files_written": pa.array([s.files for s in stats], pa.int64()),
            "bytes_written": pa.array([s.bytes for s in stats], pa.int64()),
            "notes": pa.array(["; ".join(s.notes) for s in stats], pa.string()),
        }
    )
