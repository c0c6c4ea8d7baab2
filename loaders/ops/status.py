"""`quantmini status`: what each dataset holds, from partition folders and Parquet footers (cheap), plus
the last run and its result from the run ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from loaders import calendar
from loaders.config import Settings, load_settings
from loaders.datasets import DATASETS, spec
from loaders.ops.inventory import summarize
from loaders.units import human_bytes


@dataclass(frozen=True)
class DatasetStatus:
    dataset: str
    kind: str
    first: dt.date | None
    last: dt.date | None
    present: int | None
    missing: int | None
    files: int
    rows: int
    bytes: int
    last_run_at: str | None
    last_run_result: str | None
    # REST datasets: which date partition `first`/`last` span, and rows per bronze table
    span_column: str | None = None
    tables: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "kind": self.kind,
            "first_session": self.first.isoformat() if self.first and self.kind == "flatfile" else None,
            "last_session": self.last.isoformat() if self.last and self.kind == "flatfile" else None,
            "first_date": self.first.isoformat() if self.first else None,
            "last_date": self.last.isoformat() if self.last else None,
            "span_column": self.span_column,
            "tables": self.tables,
            "sessions_present": self.present,
            "sessions_missing": self.missing,
            "files": self.files,
            "rows": self.rows,
            "bytes": self.bytes,
            "last_run_at": self.last_run_at,
            "last_run_result": self.last_run_result,
        }


def run_result(run: dict[str, Any]) -> str:
    """`ok`/`failed` plus the item counts that explain it, e.g. `failed (2 failed, 5 loaded)`.

    A REST run loads one window as one item, so "1 loaded" says nothing there: its loaded items are
    shown as the rows (and pages) they brought instead, e.g. `ok (126 rows, 3 pages)`."""
    text = str(run.get("status", "unknown"))
    counts = dict(run.get("counts") or {})
    parts = [f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: kv[0] != "failed")]
    if run.get("kind") == "rest":
        loaded = [i for i in run.get("items") or [] if i.get("status") == "loaded"]
        parts = [f"{n} {k}" for k, n in counts.items() if k != "loaded"]
        if loaded or not parts:
            pages = sum(int(i.get("pages") or 0) for i in loaded)
            parts.append(f"{sum(int(i.get('rows') or 0) for i in loaded):,} rows")
            if pages:
                parts.append(f"{pages:,} page{'s' if pages != 1 else ''}")
    if parts:
        text += " (" + ", ".join(parts) + ")"
    return text


def collect(
    settings: Settings, datasets: list[str] | None = None, *, progress: bool = False
) -> list[DatasetStatus]:
    from rich.progress import Progress

    from loaders import runs

    names = datasets or list(DATASETS)
    out: list[DatasetStatus] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("scanning bronze", total=len(names))
        for name in names:
            summary = summarize(settings, name)
            present = missing = None
            if spec(name).kind == "flatfile" and summary.first and summary.last:
                expected = calendar.sessions(summary.first, summary.last)
                have = set(summary.sessions)
                present = sum(1 for d in expected if d in have)
                missing = len(expected) - present
            rec = runs.last_run(settings.runs_dir, name)
            rest = spec(name).kind == "rest"
            out.append(
                DatasetStatus(
                    dataset=name,
                    kind=spec(name).kind,
                    first=summary.span_first if rest else summary.first,
                    last=summary.span_last if rest else summary.last,
                    present=present,
                    missing=missing,
                    files=summary.files,
                    rows=summary.rows,
                    bytes=summary.bytes,
                    last_run_at=str(rec.get("finished_at") or rec.get("started_at")) if rec else None,
                    last_run_result=run_result(rec) if rec else None,
                    span_column=summary.span_column,
                    tables=summary.tables if rest else None,
                )
            )
            bar.advance(task)
    return out


def status_command(*, show_all: bool = False, json_out: bool = False) -> int:
    """Print the status table (or JSON); status is informational, so it exits 0."""
    import json

    from rich.table import Table

    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    rows = collect(settings, progress=not json_out)
    if not show_all:
        rows = [r for r in rows if r.files or r.last_run_at]
    if json_out:
        print(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        table = Table(title=f"QuantMini status ({settings.data_dir})")
        for col in (
            "dataset",
            "first",
            "last",
            "dated by",
            "present",
            "missing",
            "rows",
            "on disk",
            "last run",
            "result",
        ):
            table.add_column(
                col, justify="right" if col in {"present", "missing", "rows", "on disk"} else "left"
            )
        for r in rows:
            missing = "" if r.missing is None else (f"[red]{r.missing}[/red]" if r.missing else "0")
            result = r.last_run_result or ""
            if result and not result.startswith(("ok", "success", "completed")):
                result = f"[yellow]{result}[/yellow]"
            table.add_row(
                r.dataset,
                str(r.first or ""),
                str(r.last or ""),
                ("session_date" if r.kind == "flatfile" and r.first else r.span_column) or "",
                "" if r.present is None else str(r.present),
                missing,
                f"{r.rows:,}",
                human_bytes(r.bytes),
                r.last_run_at or "never",
                result,
            )
        if rows:
            console.print(table)
        else:
            console.print("[yellow]Nothing loaded yet: try `quantmini bulk` or `quantmini ingest`.[/yellow]")
    return 0
