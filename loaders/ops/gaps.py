"""Gap detection: bronze session partitions against NYSE sessions, then silver and gold against bronze.

A holiday or weekend is never a gap; they are listed separately so a user sees why a date is absent.
The JSON written by `--json` is the input of `quantmini backfill --gaps-file` (schema in docs/operations.md).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loaders import calendar
from loaders.config import Settings, load_settings
from loaders.datasets import FLATFILE_DATASETS, spec
from loaders.dates import range_error
from loaders.ops.inventory import session_partitions

SCHEMA = "quantmini.gaps/1"


@dataclass(frozen=True)
class Range:
    """Consecutive missing sessions (consecutive in the NYSE calendar, so a weekend does not split a range)."""

    start: dt.date
    end: dt.date
    sessions: list[dt.date]

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sessions": len(self.sessions),
            "dates": [d.isoformat() for d in self.sessions],
        }


@dataclass
class DatasetGaps:
    dataset: str
    start: dt.date
    end: dt.date
    expected: list[dt.date]
    present: list[dt.date]
    missing: list[Range]
    holidays: list[tuple[dt.date, str]]
    weekend_days: int
    unexpected: list[dt.date]
    silver_relation: str | None = None
    missing_in_silver: list[Range] | None = None
    silver_note: str | None = None
    missing_in_gold: list[Range] | None = None
    gold_note: str | None = None
    notes: list[str] = field(default_factory=list)
    #: sessions without a partition whose file the ledger has as pending (not published yet, before its
    #: due time): not gaps until QM_PUBLISH_GRACE_HOURS after the session's close
    pending: list[dt.date] = field(default_factory=list)

    @property
    def missing_sessions(self) -> list[dt.date]:
        return [d for r in self.missing for d in r.sessions]

    def to_json(self) -> dict[str, Any]:
        def ranges(value: list[Range] | None) -> list[dict[str, Any]] | None:
            return None if value is None else [r.to_json() for r in value]

        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "sessions_expected": len(self.expected),
            "sessions_present": len(self.present),
            "sessions_missing": len(self.missing_sessions),
            "missing": ranges(self.missing),
            "silver_relation": self.silver_relation,
            "missing_in_silver": ranges(self.missing_in_silver),
            "silver_note": self.silver_note,
            "missing_in_gold": ranges(self.missing_in_gold),
            "gold_note": self.gold_note,
            "holidays": [{"date": d.isoformat(), "name": name} for d, name in self.holidays],
            "weekend_days": self.weekend_days,
            "unexpected_partitions": [d.isoformat() for d in self.unexpected],
            "pending": [d.isoformat() for d in self.pending],
        }


def to_ranges(missing: list[dt.date], expected: list[dt.date]) -> list[Range]:
    """Group missing sessions into runs that are consecutive in `expected` (the session calendar)."""
    index = {d: i for i, d in enumerate(expected)}
    out: list[Range] = []
    run: list[dt.date] = []
    for day in sorted(missing):
        if run and index.get(day, -2) != index.get(run[-1], -5) + 1:
            out.append(Range(run[0], run[-1], run))
            run = []
        run.append(day)
    if run:
        out.append(Range(run[0], run[-1], run))
    return out


def holiday_names(start: dt.date, end: dt.date) -> list[tuple[dt.date, str]]:
    """Weekday market closures in [start, end] with the exchange calendar's name where it has one."""
    import pandas as pd

    names: dict[dt.date, str] = {}
    try:
        cal = calendar._calendar()
        regular = cal.regular_holidays.holidays(pd.Timestamp(start), pd.Timestamp(end), return_name=True)
        names = {ts.date(): str(name) for ts, name in regular.items()}
    except Exception:  # names are a courtesy; the dates below come from the public API
        names = {}
    return [(d, names.get(d, "market closed")) for d in calendar.holidays(start, end)]


def weekend_days(start: dt.date, end: dt.date) -> int:
    days = (end - start).days + 1
    return sum(1 for i in range(max(days, 0)) if (start + dt.timedelta(days=i)).weekday() >= 5)


def pending_sessions(settings: Settings, dataset: str, now: dt.datetime | None = None) -> set[dt.date]:
    """Sessions the run ledger has as pending whose due time has not passed yet."""
    from loaders import runs

    now = now or dt.datetime.now(dt.UTC)
    out: set[dt.date] = set()
    for item in runs.pending_items(settings.runs_dir, dataset):
        try:
            due = dt.datetime.fromisoformat(str(item["due"]).replace("Z", "+00:00"))
            day = dt.date.fromisoformat(item["date"])
        except (KeyError, TypeError, ValueError):
            continue
        if due > now:
            out.add(day)
    return out


def detect(
    settings: Settings,
    dataset: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    downstream: bool = True,
) -> DatasetGaps:
    """Gaps of one flat-file dataset; the default range is bronze's first to last session."""
    if spec(dataset).kind != "flatfile":
        raise ValueError(
            f"gaps: {dataset} is a REST dataset without session partitions; gap detection covers "
            f"{', '.join(FLATFILE_DATASETS)}"
        )
    partitions = session_partitions(settings, dataset)
    present_all = list(partitions)
    if start is None or end is None:
        if not present_all:
            raise ValueError(
                f"gaps: bronze/{dataset} has no session partitions; pass -s and -e to check a range anyway"
            )
        start = start or present_all[0]
        end = end or present_all[-1]
    if (wrong := range_error(start, end)) is not None:
        raise ValueError(f"gaps: {wrong}")
    expected = calendar.sessions(start, end)
    expected_set = set(expected)
    present = [d for d in present_all if start <= d <= end and d in expected_set]
    present_set = set(present)
    unexpected = [d for d in present_all if start <= d <= end and d not in expected_set]
    pending = pending_sessions(settings, dataset)
    absent = [d for d in expected if d not in present_set]
    result = DatasetGaps(
        dataset=dataset,
        start=start,
        end=end,
        expected=expected,
        present=present,
        missing=to_ranges([d for d in absent if d not in pending], expected),
        holidays=holiday_names(start, end),
        weekend_days=weekend_days(start, end),
        unexpected=unexpected,
        pending=[d for d in absent if d in pending],
    )
    if downstream:
        _check_silver(settings, result, expected)
        _check_gold(settings, result, expected)
    return result


def _check_silver(settings: Settings, result: DatasetGaps, expected: list[dt.date]) -> None:
    from loaders.ops import layers

    try:
        con = layers.open_silver(settings)
    except layers.SilverUnavailable as exc:
        result.silver_note = str(exc)
        return
    try:
        relation = layers.find_relation(con, spec(result.dataset).silver_relations)
        if relation is None:
            result.silver_note = (
                f"no silver relation among {', '.join(spec(result.dataset).silver_relations)}"
            )
            return
        result.silver_relation = f"{relation.schema}.{relation.name}"
        try:
            in_silver = set(layers.session_counts(con, relation))
        except Exception as exc:
            result.silver_note = f"cannot read {result.silver_relation}: {exc}"
            return
        result.missing_in_silver = to_ranges([d for d in result.present if d not in in_silver], expected)
    finally:
        con.close()


def _check_gold(settings: Settings, result: DatasetGaps, expected: list[dt.date]) -> None:
    from loaders.ops import layers

    freq = spec(result.dataset).gold_freq
    if freq is None:
        result.gold_note = "not exported to gold"
        return
    calendar_dates = layers.gold_calendar_dates(settings, freq)
    if not calendar_dates:
        result.gold_note = f"gold calendar calendars/{freq}.txt is missing"
        return
    if freq == "day":
        in_gold = layers.gold_day_sessions_with_data(settings)
        result.gold_note = "sessions with at least one finite close in gold features"
    else:
        in_gold = set(calendar_dates)
        result.gold_note = f"sessions present in calendars/{freq}.txt"
    result.missing_in_gold = to_ranges([d for d in result.present if d not in in_gold], expected)


def write_json(results: list[DatasetGaps], path: Path) -> None:
    """Write the gaps file atomically (it may be read by a scheduled backfill)."""
    payload = {
        "schema": SCHEMA,
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "datasets": {r.dataset: r.to_json() for r in results},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


@dataclass(frozen=True)
class GapsFileEntry:
    dataset: str
    ranges: list[tuple[dt.date, dt.date]]
    needs_rebuild: bool


def read_gaps_file(path: Path) -> list[GapsFileEntry]:
    """Parse a gaps JSON file, naming the file and field on any problem."""
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: gaps file not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(payload, dict) or payload.get("schema") != SCHEMA:
        raise ValueError(f"{path}: field 'schema' must be {SCHEMA!r} (write it with `quantmini gaps --json`)")
    datasets = payload.get("datasets")
    if not isinstance(datasets, dict):
        raise ValueError(f"{path}: field 'datasets' must be an object keyed by dataset name")
    out: list[GapsFileEntry] = []
    for name, entry in datasets.items():
        where = f"{path}: datasets.{name}"
        try:
            spec(name)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("missing"), list):
            raise ValueError(f"{where}.missing must be a list of {{start, end}} objects")
        ranges: list[tuple[dt.date, dt.date]] = []
        for i, item in enumerate(entry["missing"]):
            try:
                lo, hi = dt.date.fromisoformat(item["start"]), dt.date.fromisoformat(item["end"])
            except (TypeError, KeyError, ValueError) as exc:
                raise ValueError(
                    f"{where}.missing[{i}]: needs 'start' and 'end' as YYYY-MM-DD ({exc})"
                ) from None
            if (wrong := range_error(lo, hi)) is not None:
                raise ValueError(f"{where}.missing[{i}]: {wrong}")
            ranges.append((lo, hi))
        downstream = [entry.get("missing_in_silver"), entry.get("missing_in_gold")]
        out.append(GapsFileEntry(name, ranges, any(bool(v) for v in downstream)))
    return out


# ---- CLI ----------------------------------------------------------------------------------------------


def _fmt_ranges(ranges: list[Range] | None, note: str | None) -> str:
    if ranges is None:
        return f"[dim]unknown ({note})[/dim]" if note else "[dim]unknown[/dim]"
    if not ranges:
        return "[green]none[/green]"
    parts = [
        r.start.isoformat() if r.start == r.end else f"{r.start}..{r.end} ({len(r.sessions)})" for r in ranges
    ]
    return "[red]" + ", ".join(parts) + "[/red]"


def gaps_command(
    dataset: str | None,
    start: dt.date | None,
    end: dt.date | None,
    json_path: Path | None,
    *,
    fail_on_gaps: bool = False,
) -> int:
    """`quantmini gaps`: exit 0 (1 with `fail_on_gaps` when something is missing), 2 on bad input."""
    from rich.table import Table

    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    names = [dataset] if dataset else [n for n in FLATFILE_DATASETS if session_partitions(settings, n)]
    if not names:
        console.print("[yellow]No flat-file dataset in bronze yet; nothing to check.[/yellow]")
        if json_path:
            write_json([], json_path)
        return 0
    results: list[DatasetGaps] = []
    for name in names:
        try:
            results.append(detect(settings, name, start, end))
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            return 2
    table = Table(title="Gaps (NYSE sessions)")
    for col in (
        "dataset",
        "range",
        "sessions",
        "present",
        "missing in bronze",
        "missing in silver",
        "missing in gold",
    ):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.dataset,
            f"{r.start}..{r.end}",
            str(len(r.expected)),
            str(len(r.present)),
            _fmt_ranges(r.missing, None),
            _fmt_ranges(r.missing_in_silver, r.silver_note),
            _fmt_ranges(r.missing_in_gold, r.gold_note),
        )
    console.print(table)
    for r in results:
        hol = ", ".join(f"{d} {name}" for d, name in r.holidays) or "none"
        console.print(f"[bold]{r.dataset}[/bold] not gaps: {r.weekend_days} weekend days; holidays: {hol}")
        if r.pending:
            console.print(
                f"  pending publication (not gaps yet): {', '.join(d.isoformat() for d in r.pending)}"
            )
        if r.unexpected:
            console.print(
                f"  [yellow]partitions on non-session dates: {', '.join(d.isoformat() for d in r.unexpected)}[/yellow]"
            )
    if json_path:
        write_json(results, json_path)
        console.print(f"Wrote {json_path} (read it with `quantmini backfill --gaps-file {json_path}`)")
    has_gaps = any(r.missing or r.missing_in_silver or r.missing_in_gold for r in results)
    return 1 if has_gaps and fail_on_gaps else 0
