"""Run every `bench/bench_*.py` module that exposes `run() -> dict` and print its results as tables.

A module's dict may hold `title`, `rows` (a list of dicts: one table row each), `notes` (a list of
strings) and any other scalar entries (printed as a key/value table). Results also go to
`bench/results/<module>.json`. `python -m bench flatfiles gold` runs only the named modules.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent


def discover(names: list[str]) -> list[str]:
    found = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if names:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in names}
        unknown = wanted - set(found)
        if unknown:
            raise SystemExit(f"unknown bench module(s): {sorted(unknown)}; found {found}")
        found = [m for m in found if m in wanted]
    return found


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render(console: Console, name: str, result: dict[str, Any]) -> None:
    title = str(result.get("title", name))
    rows = result.get("rows") or []
    if rows:
        columns: list[str] = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)
        table = Table(title=title)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_fmt(row.get(c, "")) for c in columns))
        console.print(table)
    scalars = {
        k: v
        for k, v in result.items()
        if k not in ("title", "rows", "notes") and not isinstance(v, list | dict)
    }
    if scalars:
        table = Table(title=f"{title}: summary" if rows else title, show_header=False)
        table.add_column("metric")
        table.add_column("value")
        for key, value in scalars.items():
            table.add_row(key, _fmt(value))
        console.print(table)
    for note in result.get("notes") or []:
        console.print(f"  {note}")


def main(argv: list[str]) -> int:
    console = Console()
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    failed = 0
    for module_name in discover(argv):
        console.rule(module_name)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{module_name}")
            result = module.run()
        except Exception:
            failed += 1
            console.print(f"[red]{module_name} failed:\n{traceback.format_exc()}")
            continue
        result.setdefault("bench_seconds", round(time.perf_counter() - started, 2))
        render(console, module_name, result)
        (out_dir / f"{module_name}.json").write_text(json.dumps(result, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
