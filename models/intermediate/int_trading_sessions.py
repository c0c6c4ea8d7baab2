"""NYSE sessions with their regular-hours bounds, from the exchange calendar rather than from the data.

Minute features need each session's real open and close (13:00 on half days); SQL cannot know the
half days, so this model asks `loaders.calendar` (exchange_calendars XNYS) for every session between
the first and the last stock session present in bronze (day or minute bars: a minute session loaded
before its day bar must still get its bounds, or its minute summary would be built without them).
"""

from __future__ import annotations

import pyarrow as pa


def model(dbt, session):
    dbt.config(materialized="table")
    from loaders.calendar import session_bounds, sessions

    # dbt reads refs of Python models statically: each needs a literal name
    relations = (dbt.ref("stg_polygon__stocks_daily"), dbt.ref("stg_polygon__stocks_minute"))
    spans = [
        relation.aggregate("min(session_date) as first_session, max(session_date) as last_session").fetchone()
        for relation in relations
    ]
    firsts = [span[0] for span in spans if span and span[0] is not None]
    lasts = [span[1] for span in spans if span and span[1] is not None]
    first_session, last_session = (min(firsts), max(lasts)) if firsts else (None, None)
    rows = []
    if first_session is not None:
        for day in sessions(first_session, last_session):
            opens_at, closes_at = session_bounds(day)
            rows.append(
                {
                    "session_date": day,
                    "regular_open_at": opens_at,
                    "regular_close_at": closes_at,
                    "regular_minutes": int((closes_at - opens_at).total_seconds() // 60),
                }
            )
    table = pa.table(
        {
            "session_date": pa.array([row["session_date"] for row in rows], pa.date32()),
            "regular_open_at": pa.array(
                [row["regular_open_at"] for row in rows], pa.timestamp("us", tz="UTC")
            ),
            "regular_close_at": pa.array(
                [row["regular_close_at"] for row in rows], pa.timestamp("us", tz="UTC")
            ),
            "regular_minutes": pa.array([row["regular_minutes"] for row in rows], pa.int32()),
        }
    )
    # explicit types, so the table is the same shape whether or not bronze has rows yet
    return session.from_arrow(table).project(
        "cast(session_date as date) as session_date,"
        " cast(regular_open_at as timestamp with time zone) as regular_open_at,"
        " cast(regular_close_at as timestamp with time zone) as regular_close_at,"
        " cast(regular_minutes as integer) as regular_minutes,"
        " regular_minutes < 390 as is_early_close"
    )
