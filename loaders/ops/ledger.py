"""Read-side view of the run ledger (JSON lines under `settings.runs_dir`) for status and retry-failed.

The ingestion loaders write the ledger; this module only reads it, tolerating unknown fields and
skipping (and counting) lines it cannot parse so one torn line never hides every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders.config import Settings


@dataclass(frozen=True)
class LedgerRecord:
    data: dict[str, Any]
    file: Path
    line: int

    def get(self, *names: str, default: Any = None) -> Any:
        for name in names:
            if name in self.data and self.data[name] is not None:
                return self.data[name]
        return default


def read_records(settings: Settings) -> tuple[list[LedgerRecord], list[str]]:
    """All ledger records in file/line order, and a list of `file:line: problem` for unreadable lines."""
    records: list[LedgerRecord] = []
    problems: list[str] = []
    root = settings.runs_dir
    if not root.is_dir():
        return records, problems
    for path in sorted(root.rglob("*.jsonl")):
        with path.open(encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    problems.append(f"{path}:{lineno}: {exc.msg}")
                    continue
                if isinstance(data, dict):
                    records.append(LedgerRecord(data, path, lineno))
    return records, problems
