"""Run one `quantmini` command and SIGKILL it when it reaches an on-disk phase for the N-th time.

    python -m chaos.killer <phase> <n> -- ingest -t stocks_daily -s 2025-10-01 -e 2025-10-08

The process dies with no cleanup (no `finally`, no atexit), exactly like `kill -9` at that moment. Phases
are places where something durable has just been written (or is half-written); they are reached through
the real code paths, only the death is injected. The exit status is -9 (128 + 9 from a shell) when the
phase was reached, the command's own status when it was not.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

_calls = {"n": 0}


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _count(after: int) -> None:
    _calls["n"] += 1
    if _calls["n"] >= after:
        die()


def _after(owner: Any, name: str, after: int) -> None:
    """Kill once `owner.name` has returned for the `after`-th time."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        _count(after)
        return result

    setattr(owner, name, wrapper)


def _before(owner: Any, name: str, after: int) -> None:
    """Kill when `owner.name` is called for the `after`-th time, before it runs."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _count(after)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _patch_parse(after: int) -> None:
    """Kill in extract, after the N-th parsed batch (flat files) or page (REST) reached dlt."""
    import loaders.flatfiles as flatfiles
    import loaders.rest as rest

    original = flatfiles.read_flatfile

    def reader(*args: Any, **kwargs: Any) -> Any:
        for table in original(*args, **kwargs):
            yield table
            _count(after)

    flatfiles.read_flatfile = reader
    original_emit = rest._emit

    def emit(*args: Any, **kwargs: Any) -> Any:
        for item in original_emit(*args, **kwargs):
            yield item
            _count(after)

    rest._emit = emit


def _patch_swap(after: int) -> None:
    """Kill between the two renames of a bronze swap: the old partition is in .trash, the new not yet in place."""
    original: Callable[..., None] = os.rename

    def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        original(src, dst, *args, **kwargs)
        if f"{os.sep}.trash{os.sep}" in os.fspath(dst):
            _count(after)

    os.rename = rename


def _patch_ledger(after: int) -> None:
    """Kill half-way through writing a ledger line (a torn line is left behind)."""
    from loaders import runs

    original = runs._write_line if hasattr(runs, "_write_line") else None
    open_ = open

    def torn(path: Any, line: str) -> None:
        _calls["n"] += 1
        if _calls["n"] >= after:
            with open_(path, "a", encoding="utf-8") as fh:
                fh.write(line[: len(line) // 2])
                fh.flush()
            die()
        assert original is not None
        original(path, line)

    if original is not None:
        runs._write_line = torn


def install(phase: str, after: int) -> None:
    """Arm the kill for `phase` (see PHASES)."""
    from dlt.common.storages.load_storage import LoadStorage
    from dlt.extract.storage import ExtractStorage

    from loaders.bronze import partitions, staging

    if phase == "parse":
        _patch_parse(after)
    elif phase == "download":
        import loaders.flatfiles.commands as commands

        _after(commands, "download", after)
    elif phase == "extract-commit":
        _after(ExtractStorage, "commit_new_load_package", after)
    elif phase == "normalize":
        _before(LoadStorage, "commit_new_load_package", after)
    elif phase == "normalize-commit":
        _after(LoadStorage, "commit_new_load_package", after)
    elif phase == "load-job":
        _after(staging, "stage_file", after)
        _after(partitions, "merge_partitions", after)
    elif phase == "load-complete":
        _after(LoadStorage, "complete_load_package", after)
    elif phase == "swap":
        _patch_swap(after)
    elif phase == "ledger":
        _patch_ledger(after)
    else:
        raise SystemExit(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")


PHASES = {
    "download": "a landing file was just completed (flat files)",
    "parse": "dlt's extract has received the N-th batch or page",
    "extract-commit": "dlt's extracted package was just committed, nothing normalized yet",
    "normalize": "normalize wrote its package but has not renamed it into place",
    "normalize-commit": "normalize renamed its package into place but has not deleted the extracted one",
    "load-job": "the destination has finished its N-th job (staged a file / merged a table)",
    "load-complete": "dlt marked the package loaded; bronze commit not yet done",
    "swap": "a bronze partition was moved to .trash and its new version is not yet in place",
    "ledger": "half of a run-ledger line was written",
}


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[2] != "--":
        raise SystemExit("usage: python -m chaos.killer <phase> <n> -- <quantmini arguments>")
    phase, after, command = args[0], int(args[1]), args[3:]
    install(phase, after)
    from loaders.cli import main as quantmini

    sys.argv = ["quantmini", *command]
    quantmini()


if __name__ == "__main__":
    main()
