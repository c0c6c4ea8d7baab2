"""Dates on the command line, and the one wording of a range that ends before it starts.

Kept free of heavy imports: the command line parses every date option with `option_date` before any command
runs, so `quantmini ingest -s 2024-13-01` fails at once, naming the option (exit code 2).
"""

from __future__ import annotations

import datetime as dt
import re

import typer

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(value: str) -> dt.date:
    """`YYYY-MM-DD` only (Python also accepts `20240101` and week dates, which read as typos here)."""
    text = value.strip()
    if not _ISO_DATE.match(text):
        raise ValueError(f"{value!r} is not a date (expected YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a date (expected YYYY-MM-DD)") from None


def option_date(value: str) -> dt.date:
    """The parser of every date option: the error names the option (typer adds it to the message)."""
    try:
        return parse_date(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def range_error(start: dt.date | None, end: dt.date | None) -> str | None:
    """The message for a range whose end is before its start (None when the range is fine or open).

    Every command words it this way, whichever layer notices it."""
    if start is not None and end is not None and end < start:
        return f"end {end} is before start {start}"
    return None
