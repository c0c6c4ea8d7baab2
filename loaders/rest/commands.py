"""`quantmini ingest -t <REST dataset>`: one dlt pipeline per dataset, landing -> bronze, summary table.

Modes, decided per dataset before the run:
- forward (`--incremental`, the default): dated datasets with a cursor continue from the cursor saved in
  dlt state (`-s` only seeds the first run); reference datasets reload their listing and merge by key.
- backfill: `--backfill-years N`, or an explicit `-e` that ends before the forward cursor. The range is
  passed as the cursor's `end_value`, which dlt keeps out of state: the forward cursor does not move.
- full (`--full`): the whole `-s`/`-e` range is requested again and merged by key, also without state.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from loaders.dates import range_error
from loaders.locks import DatasetBusy, dataset_lock
from loaders.rest import settings
from loaders.terminal import SharedConsole

log = logging.getLogger(__name__)
console = SharedConsole(stderr=True)

_TICKER = re.compile(r"^[A-Za-z0-9.:_\-]{1,40}$")


class UsageError(ValueError):
    """Bad command-line input; the message names the option, file or line."""


@dataclass
class Outcome:
    """What one dataset's run did, for the summary table and the run ledger."""

    dataset: str
    pipeline: str
    mode: str = ""
    window: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    pages: int = 0
    resumed_pages: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0
    error: str | None = None
    busy: bool = False  # another ingest of the dataset held its lock: nothing was done
    recovered: str = ""  # what was finished of an interrupted earlier run
    run: Any = None  # its run-ledger entry, announced when the run starts

    @property
    def ok(self) -> bool:
        return self.error is None


def read_tickers_file(path: Path) -> list[str]:
    """One ticker per line; blank lines and `#` comments ignored; anything else malformed is an error."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"--tickers-file {path}: cannot read ({exc.strerror})") from None
    tickers: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not _TICKER.match(entry):
            raise UsageError(f"--tickers-file {path}: line {number}: {entry!r} is not a ticker")
        if entry not in tickers:
            tickers.append(entry)
    if not tickers:
        raise UsageError(f"--tickers-file {path}: no tickers in file")
    return tickers


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _forward_cursor(pipeline: Any, resource: str, cursor: str) -> Any:
    """The forward cursor's last value saved in the pipeline's state, or None before the first run.

    Read the way a resource reads it: `dlt.sources.incremental.from_existing_state` in the source's config
    section (its state key is the source name), then the incremental's `last_value`.
    """
    import dlt
    from dlt.common.configuration import inject_section
    from dlt.common.configuration.specs.config_section_context import ConfigSectionContext

    from loaders.rest import SOURCE_NAME

    pipeline.activate()
    section = ConfigSectionContext(
        pipeline_name=pipeline.pipeline_name, sections=("sources", SOURCE_NAME), source_state_key=SOURCE_NAME
    )
    with inject_section(section):
        try:
            return dlt.sources.incremental.from_existing_state(resource, cursor).last_value
        except KeyError:  # no state for this cursor yet: the first run
            return None


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _incremental(spec: settings.Dataset, start: dt.date, end: dt.date | None) -> Any:
    """The cursor of a dated dataset; with `end` it is a stateless backfill/full window."""
    import dlt

    if spec.cursor == "published_utc":
        return dlt.sources.incremental(
            spec.cursor,
            initial_value=_midnight(start),
            end_value=_midnight(end + dt.timedelta(days=1)) if end else None,
            primary_key=(),
            range_end="open",
        )
    return dlt.sources.incremental(
        spec.cursor, initial_value=start, end_value=end, primary_key=(), range_end="closed"
    )


def _universe(ctx: Any, settings_: Any) -> list[str]:
    """Tickers for per-ticker endpoints: the tickers file, else bronze tickers, else the live listing."""
    if ctx.tickers:
        return list(ctx.tickers)
    tickers_dir = settings_.bronze_dir / "tickers"
    if any(tickers_dir.glob("*/*.parquet")):
        import duckdb

        glob = str(tickers_dir / "*" / "*.parquet")
        rows = duckdb.sql(
            f"select distinct ticker from read_parquet('{glob}', hive_partitioning = true) "
            "where active or delisted_utc is not null order by ticker"
        ).fetchall()
        return [r[0] for r in rows]
    from loaders import rest
    from loaders.rest import parsing

    names: list[str] = []
    tickers = settings.endpoint("tickers")
    params = {**tickers.params, "limit": tickers.limit, "active": "true"}
    for page in rest._walk(
        ctx, "tickers", tickers.path, params, lambda r: parsing.tickers(r, ctx.snapshot_date)
    ):
        names.extend(page["tickers"].column("ticker").to_pylist())
    return names


def _partition_dates(folder: Path, column: str) -> list[dt.date]:
    out = []
    if folder.is_dir():
        for child in folder.iterdir():
            name, _, value = child.name.partition("=")
            if name == column and any(child.glob("*.parquet")):
                try:
                    out.append(dt.date.fromisoformat(value))
                except ValueError:
                    continue
    return sorted(out)


def expired_contracts_since(bronze_dir: Path, today: dt.date) -> dt.date:
    """Where a dateless options_contracts load starts listing expired contracts.

    The option bars in bronze need the contracts that expired on or after their first session (a bar's
    contract expires on or after the bar). Without option bars yet, the default history start. When
    bronze already holds expired contracts from then on (an earlier dateless load), only the expirations
    since the newest one loaded are listed again, so a weekly refresh lists a week of expirations, not
    the whole history (a gap left by a failed run is filled with `-s/-e`).
    """
    bars = [
        day
        for dataset in settings.DATASETS["options_contracts"].requires
        for day in _partition_dates(bronze_dir / dataset, "session_date")[:1]
    ]
    needed = min(bars) if bars else settings.default_start(today)
    loaded = [
        d
        for d in _partition_dates(bronze_dir / "options_contracts", "expiration_date")
        if needed <= d < today
    ]
    return loaded[-1] if loaded else needed


def refresh_window_start(dataset: str, runs_dir: Path, bronze_dir: Path, today: dt.date) -> dt.date | None:
    """First date the daily refresh lists of a windowed dataset (splits, dividends), or None to list it whole.

    The window reaches `settings.refresh_window_days` back from the day of the last complete listing (or
    from the newest action in bronze dated on or before it, when that is earlier):
    a recorded run that succeeded over the whole market with no end date (`-e`), from at most that many
    days before it (a whole listing, or a window like this one). Everything announced before that run and
    dated inside its range is in bronze; what was announced since is dated after (or shortly before) the
    announcement, so inside the new window, which has no end: actions announced ahead are listed too.
    Corrections of older actions are picked up by the next whole listing (`refresh weekly`). Without such a
    run, or with no partition in bronze, the whole history is listed.
    """
    days = settings.refresh_window_days(dataset)
    if days is None:
        return None
    spec = settings.DATASETS[dataset]
    loaded = sorted(
        day for t in spec.tables for day in _partition_dates(bronze_dir / spec.table_dir(t), t.partition)
    )
    if not loaded:
        return None
    from loaders import runs

    anchor: dt.date | None = None
    for run in runs.read_runs(runs_dir, dataset):
        args = run.get("args") or {}
        if run.get("kind") != "rest" or run.get("status") != "ok" or args.get("end"):
            continue
        if args.get("tickers_file"):
            continue
        listed_on = args.get("listed_on") or run.get("started_at")
        if args.get("backfill_years") is not None or not listed_on:
            continue
        started = dt.date.fromisoformat(str(listed_on)[:10])
        if args.get("start") and dt.date.fromisoformat(args["start"]) > started - dt.timedelta(days=days):
            continue  # a narrower listing than the window: it does not vouch for what lies before it
        anchor = started if anchor is None else max(anchor, started)
    if anchor is None:
        return None
    anchor = min(anchor, today)
    # and from no later than the newest action dated by then: a sparse dataset, or a lake whose source
    # clock stands behind the wall clock (the sandbox), is listed back from what it last held
    held = [day for day in loaded if day <= anchor]
    if held:
        anchor = min(anchor, held[-1])
    return anchor - dt.timedelta(days=days)


def run_dataset(
    dataset: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    incremental: bool = True,
    max_concurrent: int = 4,
    rate_limit: float | None = None,
    tickers: Sequence[str] | None = None,
    backfill_years: int | None = None,
    limiter: Any = None,
    ledger_args: dict[str, Any] | None = None,
    progress: Any = None,
) -> Outcome:
    """Load one REST dataset into bronze through its own dlt pipeline.

    With `ledger_args` the run is announced in the run ledger as soon as it holds the dataset's lock (and
    recorded by `_record` when it ends), so a run killed half-way shows as interrupted. `progress` (a
    `loaders.progress.IngestProgress`) is fed the run's pages, requests and rows while it runs.
    """
    import dlt

    from loaders.bronze.destinations import rest_destination
    from loaders.config import load_settings, prepare_dlt_environment
    from loaders.rest import RunContext, polygon_rest
    from loaders.rest.client import PolygonClient, RateLimiter

    spec = settings.DATASETS[dataset]
    outcome = Outcome(dataset, spec.pipeline_name)
    started = time.perf_counter()
    cfg = load_settings()
    prepare_dlt_environment(cfg)
    # bronze keeps dlt's load id on every row (the silver sources read it as load time)
    os.environ.setdefault("NORMALIZE__PARQUET_NORMALIZER__ADD_DLT_LOAD_ID", "true")
    limiter = limiter or RateLimiter(rate_limit if rate_limit is not None else settings.DEFAULT_RATE_LIMIT)
    client: PolygonClient | None = None
    ctx: RunContext | None = None
    lock = dataset_lock(cfg.data_dir, dataset)
    try:
        lock.__enter__()
    except DatasetBusy as exc:
        outcome.error, outcome.busy = str(exc), True
        outcome.seconds = time.perf_counter() - started
        return outcome
    try:
        if ledger_args is not None:
            from loaders import runs

            try:
                # the day of the listing: the next daily refresh's window reaches back from it
                args = {**ledger_args, "pipeline": spec.pipeline_name, "listed_on": _today().isoformat()}
                outcome.run = runs.start_run(cfg.runs_dir, dataset, "rest", args)
            except OSError as exc:
                console.print(f"[yellow]warning:[/yellow] run ledger not written: {exc}")
        client = PolygonClient(
            cfg.api_url,
            cfg.api_key.reveal(),
            limiter=limiter,
            max_concurrent=max_concurrent,
            redact=cfg.redact,
        )
        pipeline = dlt.pipeline(
            pipeline_name=spec.pipeline_name,
            destination=rest_destination(cfg.bronze_dir, dataset),
            dataset_name=dataset,
            pipelines_dir=str(cfg.pipelines_dir / "pipelines"),
        )
        outcome.recovered = _recover(pipeline, spec, cfg.bronze_dir)
        explicit_end = end
        last_day = end or _today()
        first_day = start
        if first_day is None and backfill_years is not None:
            first_day = settings.years_before(last_day, backfill_years)
        ctx = RunContext(
            client=client,
            landing_root=cfg.landing_dir,
            secret=cfg.api_key.reveal(),
            start=first_day if spec.dated else None,
            end=explicit_end if spec.dated else None,
            tickers=tickers,
            max_concurrent=max_concurrent,
            snapshot_date=_today(),
            expired_since=(
                expired_contracts_since(cfg.bronze_dir, last_day)
                if dataset == "options_contracts" and first_day is None and explicit_end is None
                else None
            ),
            bronze_dir=cfg.bronze_dir if dataset == "options_contracts" else None,
        )
        if progress is not None:
            run_ctx, run_client = ctx, client
            progress.poll = lambda: {
                "rows": sum(run_ctx.rows.values()),
                "pages": run_ctx.pages,
                "requests": run_client.requests,
            }
        cursor = None
        outcome.mode = "reference"
        if spec.cursor is not None:
            seed = first_day or settings.default_start(last_day)
            forward = _forward_cursor(pipeline, _resource_name(dataset), spec.cursor)
            backfill = backfill_years is not None or (
                explicit_end is not None and forward is not None and explicit_end < _as_date(forward)
            )
            if not incremental:
                outcome.mode = "full"
                cursor = _incremental(spec, seed, last_day)
                outcome.window = f"{seed} .. {last_day}"
            elif backfill:
                outcome.mode = "backfill"
                cursor = _incremental(spec, seed, last_day)
                outcome.window = f"{seed} .. {last_day}"
            else:
                outcome.mode = "forward"
                cursor = _incremental(spec, seed, None)
                shown_from = _as_date(forward) if forward is not None else seed
                outcome.window = f"{shown_from} .. {explicit_end or 'latest'}"
        elif spec.dated and (ctx.start or ctx.end):
            outcome.window = f"{ctx.start or ''} .. {ctx.end or ''}"
        universe = _universe(ctx, cfg) if dataset == "ticker_events" else None
        source = polygon_rest(dataset, ctx, cursor=cursor, universe=universe)
        pipeline.run(source)
    except Exception as exc:  # reported in the summary and the ledger, never with the key
        outcome.error = cfg.redact(_root_cause(exc))
        log.debug("ingest %s failed", dataset, exc_info=True)
    finally:
        if ctx is not None:
            outcome.rows = dict(ctx.rows)
            outcome.pages = ctx.pages
            outcome.resumed_pages = ctx.resumed_pages
        if client is not None:
            outcome.requests = client.requests
            outcome.retries = client.retries
            outcome.rate_limited = client.rate_limited
            client.close()
        outcome.seconds = time.perf_counter() - started
        lock.__exit__(None, None, None)
    return outcome


def _recover(pipeline: Any, spec: settings.Dataset, bronze_root: Path) -> str:
    """Finish what a killed run of this dataset left: half-swapped bronze writes, then pending dlt packages.

    Without this, `pipeline.run` would load the pending packages and return without extracting anything
    new, and a package stuck in normalize would fail every later run.
    """
    from loaders import bronze
    from loaders.recovery import recover_packages

    repaired = sum(len(bronze.repair_swaps(bronze_root, spec.table_dir(t))) for t in spec.tables)
    report = recover_packages(pipeline)
    notes = [f"{repaired} interrupted bronze write(s) finished"] if repaired else []
    if report.acted:
        notes.append(report.describe())
    if report.errors:
        notes.append("; ".join(report.errors))
    return "; ".join(notes)


def _resource_name(dataset: str) -> str:
    return "financials" if dataset == "fundamentals" else dataset


def _root_cause(exc: BaseException) -> str:
    """The innermost meaningful message (dlt wraps resource errors in pipeline-step exceptions)."""
    seen = exc
    while True:
        inner = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
        if inner is None or inner is seen:
            break
        seen = inner
    text = str(seen) or type(seen).__name__
    return text.splitlines()[0] if len(text) > 400 else text


def _summary(outcomes: Sequence[Outcome]) -> Table:
    """One line per dataset; errors are printed in full below the table."""
    table = Table(title="REST ingest", title_justify="left")
    for name in ("dataset", "mode", "window", "rows", "pages", "requests", "retries", "429s", "s", "status"):
        table.add_column(
            name, justify="left" if name in {"dataset", "mode", "window", "rows", "status"} else "right"
        )
    for o in outcomes:
        rows = "\n".join(f"{t} {n:,}" for t, n in sorted(o.rows.items())) or "0"
        pages = f"{o.pages}" + (f" ({o.resumed_pages} resumed)" if o.resumed_pages else "")
        status = "[green]ok[/green]" if o.ok else "[red]FAILED[/red]"
        table.add_row(
            o.dataset,
            o.mode,
            o.window,
            rows,
            pages,
            str(o.requests),
            str(o.retries),
            str(o.rate_limited),
            f"{o.seconds:.1f}",
            status,
        )
    return table


def _record(outcomes: Sequence[Outcome], args: dict[str, Any]) -> None:
    """Append each dataset's run to the run ledger (`$QM_DATA_DIR/runs/<dataset>.jsonl`)."""
    from loaders import runs
    from loaders.config import load_settings

    runs_dir = load_settings().runs_dir
    for o in outcomes:
        if o.busy:
            continue  # nothing was attempted: the other run records its own outcome
        run = o.run or runs.start_run(
            runs_dir, o.dataset, "rest", {**args, "pipeline": o.pipeline}, announce=False
        )
        run.args = {**run.args, "mode": o.mode}
        status = "loaded" if o.ok else "failed"
        run.add(
            status,
            key=o.dataset,
            window=o.window or None,
            rows=sum(o.rows.values()),
            tables=o.rows or None,
            pages=o.pages,
            resumed_pages=o.resumed_pages or None,
            requests=o.requests,
            retries=o.retries,
            rate_limited=o.rate_limited,
            error=o.error,
        )
        run.finish("ok" if o.ok else "failed", error=o.error)


def ingest_command(
    dataset: str,
    start: dt.date | None,
    end: dt.date | None,
    *,
    incremental: bool,
    max_concurrent: int,
    rate_limit: float | None,
    tickers_file: Path | None,
    include_short_data: bool,
    backfill_years: int | None,
) -> int:
    """Entry point of `quantmini ingest` for REST datasets; returns the process exit code."""
    try:
        if dataset not in settings.DATASETS:
            raise UsageError(f"-t {dataset}: not a REST dataset ({', '.join(settings.DATASETS)})")
        if (wrong := range_error(start, end)) is not None:
            raise UsageError(wrong)
        if backfill_years is not None and backfill_years < 1:
            raise UsageError(f"--backfill-years must be at least 1, got {backfill_years}")
        if rate_limit is not None and rate_limit <= 0:
            raise UsageError(
                f"--rate-limit must be a positive number of requests per second, got {rate_limit}"
            )
        if include_short_data and dataset != "fundamentals":
            raise UsageError("--include-short-data applies to -t fundamentals")
        tickers = read_tickers_file(tickers_file) if tickers_file else None
    except UsageError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return 2
    datasets = [dataset, *(settings.SHORT_DATA if include_short_data else ())]
    from loaders.rest.client import RateLimiter

    limiter = RateLimiter(rate_limit if rate_limit is not None else settings.DEFAULT_RATE_LIMIT)
    ledger_args = {
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        "incremental": incremental,
        "tickers_file": str(tickers_file) if tickers_file else None,
        "backfill_years": backfill_years,
    }
    from loaders.progress import IngestProgress
    from loaders.terminal import console as make_console

    outcomes = []
    for name in datasets:
        with IngestProgress(make_console(stderr=True), name) as progress:
            outcomes.append(
                run_dataset(
                    name,
                    start,
                    end,
                    incremental=incremental,
                    max_concurrent=max_concurrent,
                    rate_limit=rate_limit,
                    tickers=tickers,
                    backfill_years=backfill_years,
                    limiter=limiter,
                    ledger_args=ledger_args,
                    progress=progress,
                )
            )
    console.print(_summary(outcomes))
    for o in outcomes:
        if not o.ok:
            console.print(f"[red]{o.dataset} ({o.pipeline}) failed:[/red] {o.error}", highlight=False)
    try:
        _record(outcomes, ledger_args)
    except OSError as exc:
        console.print(f"[yellow]warning:[/yellow] run ledger not written: {exc}")
    for o in outcomes:
        if o.recovered:
            console.print(f"{o.dataset}: finished an interrupted run: {o.recovered}", highlight=False)
    if all(o.ok for o in outcomes):
        return 0
    return 2 if all(o.busy for o in outcomes if not o.ok) else 1
