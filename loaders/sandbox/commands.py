"""`quantmini sandbox serve` and `quantmini sandbox advance`."""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import threading

from loaders.sandbox.faults import Faults
from loaders.sandbox.market import MarketConfig
from loaders.sandbox.server import DEMO_API_KEY, SandboxServer


def _parse_date(value: dt.date | str | None, option: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise SystemExit(f"quantmini sandbox serve: {option} expects YYYY-MM-DD, got {value!r}") from None


def export_lines(env: dict[str, str], custom_api_key: bool) -> list[str]:
    """`export VAR=value` lines; a key the user chose is not echoed back (it may be a real secret)."""
    lines = []
    for name, value in env.items():
        shown = "'<the key passed with --api-key>'" if name == "POLYGON_API_KEY" and custom_api_key else value
        lines.append(f"export {name}={shown}")
    return lines


def serve_command(
    *,
    host: str,
    port: int,
    seed: int,
    tickers: int,
    start: dt.date | str,
    end: dt.date | str,
    today: dt.date | str | None,
    option_underlyings: int,
    contracts_per_underlying: int,
    minute: bool,
    api_key: str | None,
    rate_limit: float | None,
    error_rate: float,
    latency: float,
    truncate_rate: float,
    stop_event: threading.Event | None = None,
) -> None:
    """Run the sandbox until Ctrl-C (or `stop_event`), after printing the environment that points at it."""
    try:
        config = MarketConfig(
            seed=seed,
            start=_parse_date(start, "--start") or dt.date(2024, 1, 2),
            end=_parse_date(end, "--end") or dt.date(2025, 12, 31),
            tickers=tickers,
            option_underlyings=option_underlyings,
            contracts_per_underlying=contracts_per_underlying,
            minute=minute,
            today=_parse_date(today, "--today"),
        )
        faults = Faults(seed=seed)
        faults.update(
            rate_limit=rate_limit, error_rate=error_rate, latency=latency, truncate_rate=truncate_rate
        )
    except ValueError as exc:
        raise SystemExit(f"quantmini sandbox serve: {exc}") from None
    print(
        f"Building the synthetic market (seed {seed}, {tickers} tickers, {start}..{end}) ...", file=sys.stderr
    )
    server = SandboxServer(
        config, host=host, rest_port=port, s3_port=port + 1 if port else 0, api_key=api_key, faults=faults
    )
    try:
        server.start()
    except OSError as exc:
        raise SystemExit(
            f"quantmini sandbox serve: cannot listen on {host}:{port} or {port + 1} ({exc.strerror or exc}); "
            "pass --port 0 to pick free ports"
        ) from None
    try:
        market = server.market
        print("# QuantMini sandbox is serving. Point QuantMini at it with:", flush=True)
        for line in export_lines(server.env(), custom_api_key=api_key not in (None, DEMO_API_KEY)):
            print(line)
        print(
            f"# clock: {market.today} (sessions {market.sessions[0]}..{market.sessions[-1]}); "
            f"advance with `quantmini sandbox advance --url {server.rest_url}`",
            flush=True,
        )
        print("# Ctrl-C stops the sandbox.", flush=True)
        waiter = stop_event or threading.Event()
        if threading.current_thread() is threading.main_thread():
            # SIGTERM (service managers, `kill`) and SIGINT both stop cleanly, even where SIGINT is ignored
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: waiter.set())
        try:
            while not waiter.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        server.stop()
    print("# sandbox stopped", file=sys.stderr)


def advance_command(days: int, url: str | None) -> int:
    """Ask a running sandbox to move its clock forward `days` sessions; prints the new date."""
    import httpx

    base = (url or os.environ.get("POLYGON_API_URL") or "").rstrip("/")
    if not base:
        print(
            "quantmini sandbox advance: pass --url or set POLYGON_API_URL to the sandbox REST URL",
            file=sys.stderr,
        )
        return 2
    if days < 0:
        print(f"quantmini sandbox advance: --days must be 0 or more, got {days}", file=sys.stderr)
        return 2
    try:
        response = httpx.post(f"{base}/_sandbox/advance", params={"days": days}, timeout=30)
    except httpx.HTTPError as exc:
        print(f"quantmini sandbox advance: cannot reach the sandbox at {base}: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(
            f"quantmini sandbox advance: {base} answered {response.status_code}: {response.text[:200]}",
            file=sys.stderr,
        )
        return 1
    print(f"sandbox clock: {response.json()['today']}")
    return 0
