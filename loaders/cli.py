"""`quantmini` command line. Every command imports its heavy dependencies lazily so `--help` stays fast."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(
    name="quantmini",
    help="Market-data lakehouse: Polygon/Massive -> landing -> bronze (dlt) -> silver (dbt) -> gold (Qlib).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
sandbox_app = typer.Typer(help="The Polygon-compatible sandbox (REST + S3 flat files over a synthetic market).")
export_app = typer.Typer(help="Publish gold datasets.")
schedule_app = typer.Typer(help="Manage the cron entry that runs `quantmini refresh`.")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(export_app, name="export")
app.add_typer(schedule_app, name="schedule")


class Dataset(str, Enum):
    stocks_daily = "stocks_daily"
    stocks_minute = "stocks_minute"
    options_daily = "options_daily"
    options_minute = "options_minute"
    news = "news"
    fundamentals = "fundamentals"
    short_interest = "short_interest"
    short_volume = "short_volume"
    splits = "splits"
    dividends = "dividends"
    ticker_events = "ticker_events"
    tickers = "tickers"
    options_contracts = "options_contracts"
    market_holidays = "market_holidays"


FLATFILE_DATASETS = {"stocks_daily", "stocks_minute", "options_daily", "options_minute"}


def _date(value: Optional[str]) -> Optional[dt.date]:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from exc


DatasetOpt = Annotated[Dataset, typer.Option("-t", "--type", help="Dataset to act on (see DESIGN: datasets).")]
StartOpt = Annotated[Optional[str], typer.Option("-s", "--start", help="First date, YYYY-MM-DD (inclusive).")]
EndOpt = Annotated[Optional[str], typer.Option("-e", "--end", help="Last date, YYYY-MM-DD (inclusive).")]


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
    max_concurrent: Annotated[int, typer.Option("--max-concurrent", min=1, help="Parallel downloads/requests.")] = 4,
    rate_limit: Annotated[
        Optional[float], typer.Option("--rate-limit", help="Client-side limit in requests per second (REST).")
    ] = None,
    tickers_file: Annotated[
        Optional[Path], typer.Option("--tickers-file", help="REST datasets: one ticker per line to restrict to.")
    ] = None,
    include_short_data: Annotated[
        bool, typer.Option("--include-short-data", help="fundamentals: also load short interest and short volume.")
    ] = False,
    backfill_years: Annotated[
        Optional[int], typer.Option("--backfill-years", help="REST datasets: start N years before --end when -s is not given.")
    ] = None,
) -> None:
    """Download a date range into landing and load it into bronze."""
    if dataset.value in FLATFILE_DATASETS:
        from loaders.flatfiles.commands import ingest_command

        code = ingest_command(
            dataset.value, _date(start), _date(end), incremental=incremental, max_concurrent=max_concurrent
        )
    else:
        from loaders.rest.commands import ingest_command

        code = ingest_command(
            dataset.value,
            _date(start),
            _date(end),
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
    port: Annotated[int, typer.Option("--port", help="REST port; the S3 endpoint listens on PORT+1. 0 picks free ports.")] = 8700,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default).")] = "127.0.0.1",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic market (same seed, same market).")] = 42,
    tickers: Annotated[int, typer.Option("--tickers", help="Number of stock tickers (awkward ones included).")] = 60,
    start: Annotated[str, typer.Option("--start", help="First date of the synthetic market.")] = "2024-01-02",
    end: Annotated[str, typer.Option("--end", help="Last date of the synthetic market.")] = "2025-12-31",
    today: Annotated[
        Optional[str], typer.Option("--today", help="Sandbox clock: last session served (default: --end).")
    ] = None,
    option_underlyings: Annotated[int, typer.Option("--option-underlyings", help="Underlyings with option chains.")] = 4,
    contracts_per_underlying: Annotated[
        int, typer.Option("--contracts-per-underlying", help="Option contracts listed per underlying per day.")
    ] = 40,
    minute: Annotated[bool, typer.Option("--minute/--no-minute", help="Serve minute aggregates.")] = True,
    api_key: Annotated[
        Optional[str], typer.Option("--api-key", help="REST key to accept (default: the printed demo key).", show_default=False)
    ] = None,
    rate_limit: Annotated[
        Optional[float], typer.Option("--rate-limit", help="Requests per second before answering 429.")
    ] = None,
    error_rate: Annotated[float, typer.Option("--error-rate", help="Fraction of requests answered 500/502/503.")] = 0.0,
    latency: Annotated[float, typer.Option("--latency", help="Seconds added to every response.")] = 0.0,
    truncate_rate: Annotated[
        float, typer.Option("--truncate-rate", help="Fraction of responses cut short or reset mid-body.")
    ] = 0.0,
) -> None:
    """Serve the sandbox and print the environment that points QuantMini at it."""
    from loaders.sandbox.commands import serve_command

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
        Optional[str], typer.Option("--url", help="Sandbox REST URL (default: POLYGON_API_URL).")
    ] = None,
) -> None:
    """Move a running sandbox's clock forward so the next session's files appear."""
    from loaders.sandbox.commands import advance_command

    raise typer.Exit(advance_command(days=days, url=url))


@export_app.command("qlib")
def export_qlib(
    full: Annotated[bool, typer.Option("--full/--incremental", help="Rewrite everything instead of appending.")] = False,
    minute: Annotated[bool, typer.Option("--minute/--no-minute", help="Also write the 1min provider.")] = True,
) -> None:
    """Write the Qlib provider directory from the silver tables."""
    from loaders.gold.commands import export_command

    raise typer.Exit(export_command(full=full, minute=minute))


@app.command()
def demo(
    keep_data: Annotated[bool, typer.Option("--keep-data", help="Keep an existing data directory (default: fresh demo dir).")] = False,
) -> None:
    """Run the whole pipeline on the sandbox: serve, ingest, dbt build, Qlib export, summary."""
    from loaders.demo import run_demo

    raise typer.Exit(run_demo(keep_data=keep_data))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
