"""Live progress of one ingest: files, bytes, rows, rate and ETA while it runs.

In a terminal it is a rich progress bar, drawn on the shared console (`loaders.terminal`) and removed when
the run ends, so the summary that follows is what stays on screen. Without a terminal (cron, CI logs,
pipes) there is no bar: a plain line every `QM_PROGRESS_SECONDS` seconds (default 30; 0 turns them off)
says how far the run is, so a long run in a log file is never silent.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

from loaders.units import human_bytes

DEFAULT_PLAIN_SECONDS = 30.0
#: how often a bar re-reads what it shows (counters fed by `poll`, e.g. REST pages)
TICK_SECONDS = 0.25


def clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def plain_interval() -> float:
    """Seconds between two plain progress lines (`QM_PROGRESS_SECONDS`, default 30, 0: none)."""
    raw = os.environ.get("QM_PROGRESS_SECONDS", "")
    try:
        value = float(raw) if raw else DEFAULT_PLAIN_SECONDS
    except ValueError:
        value = DEFAULT_PLAIN_SECONDS
    return max(value, 0.0)


class IngestProgress:
    """Counters of one ingest and their display; use as a context manager.

    `advance` adds finished files, bytes and rows (flat files: called as each file lands and parses);
    `poll`, when set, returns absolute counters (rows, pages, requests) and is called on every refresh
    (REST: read from the running pipeline's context). Totals, when known, give the bar and the ETA.
    """

    def __init__(
        self,
        console: Console,
        label: str,
        *,
        files: int | None = None,
        size: int | None = None,
        poll: Callable[[], dict[str, int]] | None = None,
        interval: float | None = None,
    ) -> None:
        self.console, self.label = console, label
        self.files_total, self.bytes_total = files, size
        self.poll = poll
        self.files = self.bytes = self.rows = self.pages = self.requests = 0
        self.phase = ""
        self.interval = plain_interval() if interval is None else interval
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_line = self._started
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Any = None
        self._task: Any = None
        self.lines = 0  # plain lines written (tests)

    # ---- counters

    def advance(self, *, files: int = 0, size: int = 0, rows: int = 0) -> None:
        with self._lock:
            self.files += files
            self.bytes += size
            self.rows += rows

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def _read_poll(self) -> None:
        if self.poll is None:
            return
        try:
            values = self.poll()
        except RuntimeError:  # a counter dict changed size while it was read: next tick
            return
        with self._lock:
            for name, value in values.items():
                setattr(self, name, int(value))

    # ---- what is shown

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def eta(self) -> float | None:
        """Seconds left, from the byte rate (else the file rate) so far; None without totals or a rate."""
        elapsed = self.elapsed()
        if self.bytes_total and self.bytes and elapsed > 0:
            return max(self.bytes_total - self.bytes, 0) / (self.bytes / elapsed)
        if self.files_total and self.files and elapsed > 0:
            return max(self.files_total - self.files, 0) / (self.files / elapsed)
        return None

    def describe(self) -> str:
        """`12/250 files, 1.2 GiB/3.4 GiB, 1,234,567 rows, 45.6 MiB/s, 80,000 rows/s` (what is known)."""
        with self._lock:
            elapsed = max(self.elapsed(), 1e-9)
            parts = []
            if self.files_total is not None:
                parts.append(f"{self.files}/{self.files_total} files")
            if self.bytes_total is not None:
                parts.append(f"{human_bytes(self.bytes)}/{human_bytes(self.bytes_total)}")
            if self.pages or self.poll is not None:
                parts.append(f"{self.pages:,} pages")
            if self.requests:
                parts.append(f"{self.requests:,} requests")
            parts.append(f"{self.rows:,} rows")
            if self.bytes_total is not None:
                parts.append(f"{human_bytes(self.bytes / elapsed)}/s")
            parts.append(f"{self.rows / elapsed:,.0f} rows/s")
            if self.phase:
                parts.append(self.phase)
            return ", ".join(parts)

    def line(self) -> str:
        """The plain progress line: label, counters, elapsed and ETA."""
        eta = self.eta()
        tail = f"; {clock(self.elapsed())} elapsed" + (f", ETA {clock(eta)}" if eta is not None else "")
        return f"{self.label}: {self.describe()}{tail}"

    # ---- display

    def __enter__(self) -> IngestProgress:
        self._started = self._last_line = time.monotonic()
        if self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[counters]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
                auto_refresh=False,
            )
            self._bar.start()
            total = self.bytes_total if self.bytes_total else self.files_total
            self._task = self._bar.add_task(self.label, total=total or None, counters="starting")
            self._refresh()
        elif self.interval <= 0:
            return self
        self._thread = threading.Thread(target=self._run, name="ingest-progress", daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        self._read_poll()
        if self._bar is not None:
            completed = self.bytes if self.bytes_total else self.files
            self._bar.update(self._task, completed=completed, counters=self.describe())
            self._bar.refresh()
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)
            self.lines += 1

    def _run(self) -> None:
        tick = TICK_SECONDS if self._bar is not None else min(TICK_SECONDS * 4, self.interval)
        while not self._stop.wait(tick):
            self._refresh()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._bar is not None:
            self._refresh()
            self._bar.stop()
