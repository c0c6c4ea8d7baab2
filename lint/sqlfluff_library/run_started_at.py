"""`run_started_at` for sqlfluff's Jinja templater: dbt's start time of the run, a fixed instant here, so
a model stamping its rows with it (macros/cross_engine/functions.sql `run_started_instant`) renders."""

from __future__ import annotations

import datetime as _dt

_STARTED = _dt.datetime(2000, 1, 1, tzinfo=_dt.UTC)


def strftime(format: str) -> str:  # noqa: A002 - the argument name of datetime.strftime
    return _STARTED.strftime(format)
