"""`quantmini` command line. Every command imports its heavy dependencies lazily so `--help` stays fast."""

from __future__ import annotations

import datetime as dt
import gc
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from loaders import datasets as registry
from loaders.dates import option_date, range_error

app = typer.Typer(
    name="quantmini",
    help="Market-data lakehouse: Polygon/Massive -> landing -> bronze (dlt) -> silver (dbt) -> gold (Qlib).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
sandbox_app = typer.Typer(
    help="The Polygon-compatible sandbox (REST + S3 flat files over a synthetic market)."
)
export_app = typer.Typer(help="Publish gold datasets.")
schedule_app = typer.Typer(help="Manage the cron entry that runs `quantmini refresh`.")
lake_app = typer.Typer(
    help="Keep the data directory in an S3-compatible bucket (QM_LAKE_S3_*): pull before a run, push after."
)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(export_app, name="export")
app.add_typer(schedule_app, name="schedule")
app.add_typer(lake_app, name="lake")


# the `-t` choices: every dataset of the registry, in its order
Dataset = StrEnum("Dataset", {name: name for name in registry.NAMES})


def _check_range(start: dt.date | None, end: dt.date | None) -> None:
    """Refuse a range that ends before it starts, in the one wording every command uses."""
    message = range_error(start, end)
    if message is not None:
        raise typer.BadParameter(message, param_hint="-s/--start, -e/--end")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"quantmini {version('quantmini')}")
        except PackageNotFoundError:
            typer.echo("quantmini (not installed as a package: run `make install`)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the installed version and exit."
        ),
    ] = False,
) -> None:
    pass


DatasetOpt = Annotated[
    Dataset, typer.Option("-t", "--type", help="Dataset to act on (README: Loading data).")
]
StartOpt = Annotated[
    dt.date | None,
    typer.Option(
        "-s", "--start", parser=option_date, metavar="YYYY-MM-DD", help="First date, YYYY-MM-DD (inclusive)."
    ),
]
EndOpt = Annotated[
    dt.date | None,
    typer.Option(
        "-e", "--end", parser=option_date, metavar="YYYY-MM-DD", help="Last date, YYYY-MM-DD (inclusive)."
    ),
]

BuildOpt = Annotated[
    bool,
    typer.Option(
        "--build/--no-build", help="Run `dbt build` and the gold export afterwards (if silver exists)."
    ),
]
DbtSelectOpt = Annotated[
    str | None,
    typer.Option(
        "--dbt-select", help="dbt node selection for the build step, e.g. '+qlib_export' (default: all)."
    ),
]


class Target(StrEnum):
    """profiles.yml outputs silver can be built on."""

    dev = "dev"
    spark = "spark"


TargetOpt = Annotated[
    Target,
    typer.Option("--target", help="Engine silver is built on: dev (DuckDB) or spark (docs/scale-out.md)."),
]


@app.command()
def ingest(
    dataset: DatasetOpt,
    start: StartOpt = None,
    end: EndOpt = None,
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental/--full",
            help="--incremental loads only what bronze lacks (and republished files); --full re-downloads and replaces the range.",
        ),
    ] = True,
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", min=1, help="Parallel downloads/requests.")
    ] = 4,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", help="Client-side limit in requests per second (REST).")
    ] = None,
    tickers_file: Annotated[
        Path | None, typer.Option("--tickers-file", help="REST datasets: one ticker per line to restrict to.")
    ] = None,
    include_short_data: Annotated[
        bool,
        typer.Option("--include-short-data", help="fundamentals: also load short interest and short volume."),
    ] = False,
    backfill_years: Annotated[
        int | None,
        typer.Option(
            "--backfill-years", help="REST datasets: start N years before --end when -s is not given."
        ),
    ] = None,
) -> None:
    """Download a date range into landing and load it into bronze.

    Flat files exit 0 when every session loaded, was skipped, is not published or still pending; 1 when
    some failed; 2 on bad arguments or a busy dataset; 68/69 when POLYGON_S3_ENDPOINT cannot be resolved
    or reached; 77 when the credentials are rejected or the first files denied; 78 when a setting is
    missing or invalid (docs/ingestion.md).
    """
    _check_range(start, end)
    if registry.spec(dataset.value).kind == "flatfile":
        from loaders.flatfiles.commands import ingest_command

        code = ingest_command(
            dataset.value, start, end, incremental=incremental, max_concurrent=max_concurrent
        )
    else:
        from loaders.rest.commands import ingest_command

        code = ingest_command(
            dataset.value,
            start,
            end,
            incremental=incremental,
            max_concurrent=max_concurrent,
            rate_limit=rate_limit,
            tickers_file=tickers_file,
            include_short_data=include_short_data,
            backfill_years=backfill_years,
        )
    raise typer.Exit(code)


@sandbox_app.command("serve")
def sandbox_serve(
    port: Annotated[
        int, typer.Option("--port", help="REST port; the S3 endpoint listens on PORT+1. 0 picks free ports.")
    ] = 8700,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the synthetic market (same seed, same market).")
    ] = 42,
    tickers: Annotated[
        int, typer.Option("--tickers", help="Number of stock tickers (awkward ones included).")
    ] = 60,
    start: Annotated[
        dt.date,
        typer.Option(
            "--start", parser=option_date, metavar="YYYY-MM-DD", help="First date of the synthetic market."
        ),
    ] = "2024-01-02",  # type: ignore[assignment]  # click converts the default like any value
    end: Annotated[
        dt.date,
        typer.Option(
            "--end", parser=option_date, metavar="YYYY-MM-DD", help="Last date of the synthetic market."
        ),
    ] = "2025-12-31",  # type: ignore[assignment]
    today: Annotated[
        dt.date | None,
        typer.Option(
            "--today",
            parser=option_date,
            metavar="YYYY-MM-DD",
            help="Sandbox clock: last session served (default: --end).",
        ),
    ] = None,
    option_underlyings: Annotated[
        int, typer.Option("--option-underlyings", help="Underlyings with option chains.")
    ] = 4,
    contracts_per_underlying: Annotated[
        int,
        typer.Option("--contracts-per-underlying", help="Option contracts listed per underlying per day."),
    ] = 40,
    minute: Annotated[bool, typer.Option("--minute/--no-minute", help="Serve minute aggregates.")] = True,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", help="REST key to accept (default: the printed demo key).", show_default=False
        ),
    ] = None,
    rate_limit: Annotated[
        float | None, typer.Option("--rate-limit", help="Requests per second before answering 429.")
    ] = None,
    error_rate: Annotated[
        float, typer.Option("--error-rate", help="Fraction of requests answered 500/502/503.")
    ] = 0.0,
    latency: Annotated[float, typer.Option("--latency", help="Seconds added to every response.")] = 0.0,
    truncate_rate: Annotated[
        float, typer.Option("--truncate-rate", help="Fraction of responses cut short or reset mid-body.")
    ] = 0.0,
) -> None:
    """Serve the sandbox and print the environment that points QuantMini at it."""
    from loaders.sandbox.commands import serve_command

    message = range_error(start, end)
    if message is not None:
        raise typer.BadParameter(message, param_hint="--start, --end")

    serve_command(
        host=host,
        port=port,
        seed=seed,
        tickers=tickers,
        start=start,
        end=end,
        today=today,
        option_underlyings=option_underlyings,
        contracts_per_underlying=contracts_per_underlying,
        minute=minute,
        api_key=api_key,
        rate_limit=rate_limit,
        error_rate=error_rate,
        latency=latency,
        truncate_rate=truncate_rate,
    )


@sandbox_app.command("advance")
def sandbox_advance(
    days: Annotated[int, typer.Option("--days", help="Sessions to move the sandbox clock forward.")] = 1,
    url: Annotated[
        str | None, typer.Option("--url", help="Sandbox REST URL (default: POLYGON_API_URL).")
    ] = None,
) -> None:
    """Move a running sandbox's clock forward so the next session's files appear."""
    from loaders.sandbox.commands import advance_command

    raise typer.Exit(advance_command(days=days, url=url))


@export_app.command("qlib")
def export_qlib(
    full: Annotated[
        bool, typer.Option("--full/--incremental", help="Rewrite everything instead of appending.")
    ] = False,
    minute: Annotated[
        bool, typer.Option("--minute/--no-minute", help="Also write the 1min provider.")
    ] = True,
    target: TargetOpt = Target.dev,
) -> None:
    """Write the Qlib provider directory from the silver tables."""
    from loaders.gold.commands import export_command

    raise typer.Exit(export_command(full=full, minute=minute, target=target.value))


@app.command()
def demo(
    keep_data: Annotated[
        bool, typer.Option("--keep-data", help="Keep an existing data directory (default: fresh demo dir).")
    ] = False,
) -> None:
    """Run the whole pipeline on the sandbox: serve, ingest, dbt build, Qlib export, summary."""
    from loaders.demo import run_demo

    raise typer.Exit(run_demo(keep_data=keep_data))


# ---- operations: gaps, backfill, retry-failed, bulk, status, validate, report, cleanup, refresh, schedule ----

DatasetsOpt = Annotated[
    list[Dataset] | None,
    typer.Option(
        "-t", "--type", help="Dataset(s) to act on; repeat the option for several (default: all that apply)."
    ),
]


@app.command()
def gaps(
    dataset: Annotated[
        Dataset | None,
        typer.Option("-t", "--type", help="Flat-file dataset to check (default: every one in bronze)."),
    ] = None,
    start: Annotated[
        dt.date | None,
        typer.Option(
            "-s",
            "--start",
            parser=option_date,
            metavar="YYYY-MM-DD",
            help="First date to check, YYYY-MM-DD (default: first bronze session).",
        ),
    ] = None,
    end: Annotated[
        dt.date | None,
        typer.Option(
            "-e",
            "--end",
            parser=option_date,
            metavar="YYYY-MM-DD",
            help="Last date to check, YYYY-MM-DD (default: last bronze session).",
        ),
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the gaps as JSON; `backfill --gaps-file` reads it."),
    ] = None,
    fail_on_gaps: Annotated[
        bool,
        typer.Option("--fail-on-gaps", help="Exit 1 when any session is missing in bronze, silver or gold."),
    ] = False,
) -> None:
    """List NYSE sessions missing in bronze (as ranges), and bronze sessions missing in silver or gold."""
    from loaders.ops.gaps import gaps_command

    _check_range(start, end)
    raise typer.Exit(
        gaps_command(dataset.value if dataset else None, start, end, json_file, fail_on_gaps=fail_on_gaps)
    )


@app.command()
def backfill(
    dataset: Annotated[
        Dataset | None,
        typer.Option("-t", "--type", help="Dataset to load (with --gaps-file: only this one)."),
    ] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    gaps_file: Annotated[
        Path | None,
        typer.Option("--gaps-file", help="Load the missing ranges of a `quantmini gaps --json` file."),
    ] = None,
    incremental: Annotated[
        bool | None,
        typer.Option(
            "--incremental/--full",
            help="Skip what bronze already has, or replace the range. Default: --full for --gaps-file, --incremental for -s/-e.",
            show_default=False,
        ),
    ] = None,
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", min=1, help="Parallel downloads per chunk.")
    ] = 4,
    build: BuildOpt = True,
    dbt_select: DbtSelectOpt = None,
) -> None:
    """Load a date range (or a gaps file's ranges) in calendar-month chunks."""
    from loaders.ops.backfill import backfill_command

    _check_range(start, end)
    raise typer.Exit(
        backfill_command(
            dataset.value if dataset else None,
            start,
            end,
            gaps_file,
            incremental=incremental,
            max_concurrent=max_concurrent,
            build=build,
            dbt_select=dbt_select,
        )
    )


@app.command("retry-failed")
def retry_failed(
    datasets: DatasetsOpt = None,
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", min=1, help="Parallel downloads per retry.")
    ] = 4,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be retried.")] = False,
    build: BuildOpt = True,
    dbt_select: DbtSelectOpt = None,
    dismiss: Annotated[
        bool,
        typer.Option(
            "--dismiss",
            help="Do not retry: clear the failed (and pending) items for good, e.g. files Polygon will never "
            "publish. With -s/-e only those dated in that range.",
        ),
    ] = False,
    start: StartOpt = None,
    end: EndOpt = None,
    reason: Annotated[
        str, typer.Option("--reason", help="Why the items are dismissed (kept in the ledger).")
    ] = "dismissed by hand",
) -> None:
    """Re-run the dates and pages that failed in earlier runs (from the run ledger) and are still unresolved."""
    from loaders.ops.retry import dismiss_command, retry_failed_command

    if dismiss:
        _check_range(start, end)
        names = [d.value for d in datasets] if datasets else None
        raise typer.Exit(dismiss_command(names, start, end, reason=reason))
    if start or end:
        raise typer.BadParameter("-s/-e select what --dismiss clears; retries always cover every failure")
    raise typer.Exit(
        retry_failed_command(
            [d.value for d in datasets] if datasets else None,
            max_concurrent=max_concurrent,
            dry_run=dry_run,
            build=build,
            dbt_select=dbt_select,
        )
    )


def _bulk(
    datasets: DatasetsOpt = None,
    skip: Annotated[
        list[Dataset] | None, typer.Option("--skip", help="Dataset to leave out; repeatable.")
    ] = None,
    history: Annotated[
        list[str] | None,
        typer.Option(
            "--history",
            help="Override a history limit, DATASET=N[y|m|d] (e.g. stocks_minute=6m); repeatable.",
        ),
    ] = None,
    end: Annotated[
        dt.date | None,
        typer.Option(
            "-e",
            "--end",
            parser=option_date,
            metavar="YYYY-MM-DD",
            help="Last date to load, YYYY-MM-DD (default: latest available).",
        ),
    ] = None,
    parallel: Annotated[
        int, typer.Option("--parallel", min=1, help="Datasets loaded at once, each in its own process.")
    ] = 2,
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", min=1, help="Parallel downloads per dataset.")
    ] = 4,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (dataset, start, end) and stop.")
    ] = False,
) -> None:
    """Load every dataset for its usual history (each with its own limit), several datasets in parallel."""
    from loaders.ops.bulk import bulk_command

    raise typer.Exit(
        bulk_command(
            [d.value for d in datasets] if datasets else None,
            skip=[d.value for d in skip] if skip else [],
            history=history or [],
            end=end,
            parallel=parallel,
            max_concurrent=max_concurrent,
            dry_run=dry_run,
        )
    )


app.command("bulk")(_bulk)
app.command("download-all", help="Alias of `bulk`.")(_bulk)


@app.command()
def status(
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list datasets that were never loaded.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per dataset: first/last session, sessions present and missing, rows, bytes on disk, last run and result."""
    from loaders.ops.status import status_command

    raise typer.Exit(status_command(show_all=show_all, json_out=json_out))


@app.command()
def validate(
    datasets: DatasetsOpt = None,
    silver: Annotated[bool, typer.Option("--silver/--no-silver", help="Check silver against bronze.")] = True,
    gold: Annotated[bool, typer.Option("--gold/--no-gold", help="Check gold against silver.")] = True,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep", help="Check all history, not only partitions new or changed since the last clean run."
        ),
    ] = False,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the findings as JSON.")] = None,
) -> None:
    """Read new or changed bronze partitions (all with --deep) with DuckDB, check schemas, silver against
    bronze, gold against silver."""
    from loaders.ops.validate import validate_command

    raise typer.Exit(
        validate_command(
            [d.value for d in datasets] if datasets else None,
            silver=silver,
            gold=gold,
            deep=deep,
            json_path=json_file,
        )
    )


@app.command()
def report(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default: $QM_DATA_DIR/reports/coverage.html)."),
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the summary as JSON.")] = None,
) -> None:
    """Coverage summary, landing/bronze compression ratio, and an HTML heat map of coverage by month."""
    from loaders.ops.report import report_command

    raise typer.Exit(report_command(out=out, json_path=json_file))


@app.command()
def cleanup(
    keep_days: Annotated[
        int, typer.Option("--keep-days", min=0, help="Keep landing files modified in the last N days.")
    ],
    apply: Annotated[
        bool, typer.Option("--apply", help="Delete for real (default: dry run that only lists).")
    ] = False,
    bronze: Annotated[
        bool,
        typer.Option(
            "--bronze", help="Also remove bronze session partitions dated more than N days ago (destructive)."
        ),
    ] = False,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", "-t", help="With --bronze: only these flat-file datasets (repeatable)."),
    ] = None,
    allow_history_loss: Annotated[
        bool,
        typer.Option(
            "--allow-history-loss",
            help="Remove bronze sessions even where silver or gold would lose them (see docs/operations.md).",
        ),
    ] = False,
) -> None:
    """Remove landing files older than N days; dry run unless --apply; bronze untouched unless --bronze."""
    from loaders.ops.cleanup import cleanup_command

    raise typer.Exit(
        cleanup_command(
            keep_days=keep_days,
            apply=apply,
            bronze=bronze,
            datasets=dataset,
            allow_history_loss=allow_history_loss,
        )
    )


class RefreshMode(StrEnum):
    daily = "daily"
    weekly = "weekly"


@app.command()
def refresh(
    mode: Annotated[
        RefreshMode,
        typer.Argument(help="daily: fast datasets; weekly: adds gaps + backfill and slow datasets."),
    ],
    datasets: DatasetsOpt = None,
    max_concurrent: Annotated[
        int, typer.Option("--max-concurrent", min=1, help="Parallel downloads per dataset.")
    ] = 4,
    build: Annotated[
        bool, typer.Option("--build/--no-build", help="Run `dbt build` and the gold export.")
    ] = True,
    check: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Run `quantmini validate` at the end.")
    ] = True,
    dbt_select: DbtSelectOpt = None,
    target: TargetOpt = Target.dev,
) -> None:
    """Ingest incrementally, `dbt build`, export gold, validate; prints a summary and exits non-zero on failure."""
    from loaders.ops.refresh import refresh_command

    raise typer.Exit(
        refresh_command(
            mode.value,
            [d.value for d in datasets] if datasets else None,
            max_concurrent=max_concurrent,
            build=build,
            validate=check,
            dbt_select=dbt_select,
            target=None if target is Target.dev else target.value,
        )
    )


CrontabOpt = Annotated[
    Path | None,
    typer.Option(
        "--crontab-file",
        help="Edit this crontab file instead of the user's crontab (`crontab -l`/`crontab -`).",
    ),
]


@schedule_app.command("install")
def schedule_install(
    daily_at: Annotated[
        str, typer.Option("--daily-at", help="Local time HH:MM of the daily refresh (Tue-Sat).")
    ] = "06:30",
    weekly_at: Annotated[
        str, typer.Option("--weekly-at", help="Local time HH:MM of the weekly refresh (Sundays).")
    ] = "08:00",
    log_file: Annotated[
        Path | None,
        typer.Option("--log-file", help="Where cron output goes (default: $QM_DATA_DIR/logs/refresh.log)."),
    ] = None,
    crontab_file: CrontabOpt = None,
) -> None:
    """Install (or update) the cron entries for `refresh daily` and `refresh weekly`; idempotent."""
    from loaders.ops.schedule import install_command

    raise typer.Exit(
        install_command(daily_at=daily_at, weekly_at=weekly_at, log_file=log_file, crontab_file=crontab_file)
    )


@schedule_app.command("remove")
def schedule_remove(crontab_file: CrontabOpt = None) -> None:
    """Remove the QuantMini cron entries (leaves every other line alone)."""
    from loaders.ops.schedule import remove_command

    raise typer.Exit(remove_command(crontab_file=crontab_file))


LakeDryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Say what would be transferred; change nothing.")
]


@lake_app.command("pull")
def lake_pull(dry_run: LakeDryRunOpt = False) -> None:
    """Download the files that differ from the bucket's lake; an interrupted pull changes nothing."""
    from loaders.ops.lake import lake_command

    raise typer.Exit(lake_command("pull", dry_run=dry_run))


@lake_app.command("push")
def lake_push(
    dry_run: LakeDryRunOpt = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Push even if the bucket moved on since the last pull, or most files would go."
        ),
    ] = False,
) -> None:
    """Upload what changed since the bucket's lake (and delete what was removed here) in one new generation."""
    from loaders.ops.lake import lake_command

    raise typer.Exit(lake_command("push", force=force, dry_run=dry_run))


def main() -> None:
    from loaders.extras import MissingExtra
    from loaders.terminal import console

    if not console(stderr=True).is_terminal:
        # click's plain one-line usage errors and help, not rich panels squeezed into 80 columns
        app.rich_markup_mode = None
    try:
        app()
    except MissingExtra as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as exc:
        from loaders.storage_errors import describe, storage_error

        error = storage_error(exc)
        if error is None:
            raise
        console(stderr=True).print(f"[red]error:[/red] {describe(error)}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    finally:
        # The interpreter's exit collects garbage over every object the imports created (about a million
        # once dlt is loaded): 0.3-0.4 CPU-s for nothing, as the process ends. Frozen objects are skipped.
        gc.freeze()


if __name__ == "__main__":
    main()
