"""`quantmini report`: coverage summary, landing/bronze compression ratio, and a self-contained HTML page
with an inline SVG heat map (dataset x month, shaded by the share of NYSE sessions present).

The page has no scripts and no external assets, so it opens anywhere (a mail attachment, a CI artifact).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders import calendar
from loaders.config import Settings, load_settings
from loaders.datasets import DATASETS, spec
from loaders.ops.inventory import bronze_root, landing_root, parquet_files, summarize, tree_bytes
from loaders.units import human_bytes

CELL_W, CELL_H, LABEL_W, HEADER_H = 20, 22, 130, 34


@dataclass(frozen=True)
class Coverage:
    dataset: str
    kind: str
    start: dt.date | None
    end: dt.date | None
    instruments: int | None
    rows: int
    bronze_bytes: int
    landing_bytes: int
    #: (year, month) -> (sessions present, NYSE sessions in that month within [start, end])
    months: dict[tuple[int, int], tuple[int, int]]

    @property
    def ratio(self) -> float | None:
        return self.landing_bytes / self.bronze_bytes if self.bronze_bytes and self.landing_bytes else None

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "kind": self.kind,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "instruments": self.instruments,
            "rows": self.rows,
            "bronze_bytes": self.bronze_bytes,
            "landing_bytes": self.landing_bytes,
            "compression_ratio": round(self.ratio, 3) if self.ratio else None,
            "months": {
                f"{y:04d}-{m:02d}": {"present": p, "sessions": n} for (y, m), (p, n) in self.months.items()
            },
        }


def _instruments(files: list[Path]) -> int | None:
    """Distinct tickers (contracts for options) across a dataset, read by DuckDB from the ticker column."""
    import duckdb
    import pyarrow.parquet as pq

    if not files or "ticker" not in pq.read_schema(files[0]).names:
        return None
    listing = "[" + ", ".join("'" + str(f).replace("'", "''") + "'" for f in files) + "]"
    with duckdb.connect() as con:
        row = con.execute(
            f"select count(distinct ticker) from read_parquet({listing}, union_by_name = true)"
        ).fetchone()
    return int(row[0]) if row else None


def coverage(settings: Settings, dataset: str) -> Coverage:
    summary = summarize(settings, dataset)
    files = parquet_files(bronze_root(settings, dataset))
    months: dict[tuple[int, int], tuple[int, int]] = {}
    if summary.first and summary.last:
        have = set(summary.sessions)
        for day in calendar.sessions(summary.first, summary.last):
            present, total = months.get((day.year, day.month), (0, 0))
            months[(day.year, day.month)] = (present + (day in have), total + 1)
    return Coverage(
        dataset=dataset,
        kind=spec(dataset).kind,
        start=summary.first,
        end=summary.last,
        instruments=_instruments(files),
        rows=summary.rows,
        bronze_bytes=summary.bytes,
        landing_bytes=tree_bytes(landing_root(settings, dataset)),
        months=months,
    )


def _colour(share: float) -> str:
    """Red (nothing) through amber to green (complete)."""
    if share >= 1.0:
        return "#2e7d32"
    if share <= 0.0:
        return "#c62828"
    # interpolate red -> amber -> light green
    stops = [(0.0, (198, 40, 40)), (0.5, (249, 168, 37)), (0.99, (156, 204, 101))]
    for (a, ca), (b, cb) in zip(stops, stops[1:], strict=False):
        if a <= share <= b:
            t = (share - a) / (b - a)
            r, g, bl = (round(x + (y - x) * t) for x, y in zip(ca, cb, strict=True))
            return f"#{r:02x}{g:02x}{bl:02x}"
    return "#9ccc65"


def heatmap_svg(rows: list[Coverage]) -> str:
    """Inline SVG: one row per session-partitioned dataset, one cell per month from the earliest to the latest."""
    rows = [r for r in rows if r.months]
    if not rows:
        return '<p class="muted">No session-partitioned dataset in bronze yet.</p>'
    first = min(min(r.months) for r in rows)
    last = max(max(r.months) for r in rows)
    months: list[tuple[int, int]] = []
    y, m = first
    while (y, m) <= last:
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    width = LABEL_W + CELL_W * len(months) + 10
    height = HEADER_H + CELL_H * len(rows) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="coverage by month">'
    ]
    for i, (yy, mm) in enumerate(months):
        x = LABEL_W + i * CELL_W
        # a year label at each January, and at the start unless the next January is too close to fit it
        if mm == 1 or (i == 0 and mm <= 10):
            parts.append(f'<text x="{x}" y="12" class="yr">{yy}</text>')
        parts.append(
            f'<text x="{x + CELL_W / 2}" y="{HEADER_H - 6}" class="mo" text-anchor="middle">{"JFMAMJJASOND"[mm - 1]}</text>'
        )
    for j, row in enumerate(rows):
        top = HEADER_H + j * CELL_H
        parts.append(
            f'<text x="{LABEL_W - 8}" y="{top + CELL_H * 0.68}" text-anchor="end" class="ds">{html.escape(row.dataset)}</text>'
        )
        for i, key in enumerate(months):
            x = LABEL_W + i * CELL_W
            if key not in row.months:
                parts.append(
                    f'<rect x="{x}" y="{top}" width="{CELL_W - 2}" height="{CELL_H - 2}" fill="#eeeeee"/>'
                )
                continue
            present, total = row.months[key]
            share = present / total if total else 0.0
            label = f"{row.dataset} {key[0]:04d}-{key[1]:02d}: {present}/{total} sessions"
            parts.append(
                f'<rect class="cell" x="{x}" y="{top}" width="{CELL_W - 2}" height="{CELL_H - 2}" '
                f'fill="{_colour(share)}" data-month="{key[0]:04d}-{key[1]:02d}" data-dataset="{html.escape(row.dataset)}" '
                f'data-present="{present}" data-sessions="{total}"><title>{html.escape(label)}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def render_html(rows: list[Coverage], generated: str) -> str:
    table_rows = []
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio else "—"
        table_rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(v))}</td>"
                for v in (
                    r.dataset,
                    r.start or "—",
                    r.end or "—",
                    f"{r.instruments:,}" if r.instruments is not None else "—",
                    f"{r.rows:,}",
                    human_bytes(r.bronze_bytes),
                    human_bytes(r.landing_bytes) if r.landing_bytes else "—",
                    ratio,
                )
            )
            + "</tr>"
        )
    missing = sum(t - p for r in rows for p, t in r.months.values())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>QuantMini coverage</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; white-space: nowrap; }}
th:first-child, td:first-child {{ text-align: left; }}
.muted {{ color: #777; }}
svg text {{ font-size: 11px; fill: #333; }} svg .ds {{ font-size: 12px; }} svg .yr {{ font-weight: bold; }}
.legend span {{ display: inline-block; width: 14px; height: 14px; vertical-align: middle; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>QuantMini coverage</h1>
<p class="muted">Generated {html.escape(generated)}. Sessions are NYSE sessions; holidays and weekends are not gaps.</p>
<h2>Summary</h2>
<table id="summary"><thead><tr><th>dataset</th><th>start</th><th>end</th><th>tickers / contracts</th><th>rows</th>
<th>bronze</th><th>landing</th><th>landing / bronze</th></tr></thead>
<tbody>{"".join(table_rows)}</tbody></table>
<h2>Coverage by month</h2>
<p>{missing} session(s) missing in bronze between each dataset's first and last session.</p>
<p class="legend"><span style="background:#2e7d32"></span>complete<span style="background:#f9a825"></span>partial
<span style="background:#c62828"></span>empty<span style="background:#eeeeee"></span>outside the loaded range</p>
{heatmap_svg(rows)}
</body></html>
"""


def build_report(settings: Settings) -> list[Coverage]:
    from rich.progress import Progress

    names = [n for n in DATASETS if parquet_files(settings.bronze_dir / n)]
    out: list[Coverage] = []
    with Progress(transient=True) as bar:
        task = bar.add_task("measuring coverage", total=len(names))
        for name in names:
            out.append(coverage(settings, name))
            bar.advance(task)
    return out


def report_command(*, out: Path | None = None, json_path: Path | None = None) -> int:
    from rich.table import Table

    from loaders.terminal import console as make_console

    console = make_console()
    settings = load_settings()
    rows = build_report(settings)
    table = Table(title="Coverage")
    for col in (
        "dataset",
        "start",
        "end",
        "tickers/contracts",
        "rows",
        "bronze",
        "landing",
        "landing/bronze",
    ):
        table.add_column(col, justify="left" if col in {"dataset", "start", "end"} else "right")
    for r in rows:
        table.add_row(
            r.dataset,
            str(r.start or "—"),
            str(r.end or "—"),
            f"{r.instruments:,}" if r.instruments is not None else "—",
            f"{r.rows:,}",
            human_bytes(r.bronze_bytes),
            human_bytes(r.landing_bytes) if r.landing_bytes else "—",
            f"{r.ratio:.2f}x" if r.ratio else "—",
        )
    console.print(table)
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    out = out or settings.data_dir / "reports" / "coverage.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_html(rows, generated), encoding="utf-8")
    console.print(f"Wrote {out}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(
            json.dumps({"generated_at": generated, "datasets": [r.to_json() for r in rows]}, indent=2) + "\n"
        )
    return 0
