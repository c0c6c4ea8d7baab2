"""One ingest at a time per dataset: a file lock under `$QM_DATA_DIR/locks/<dataset>.lock`.

Every dataset's ingest (flat files and REST alike) holds its lock for the whole run, recovery of an
interrupted run included: recovery finishes or deletes what another run left, which is only safe when no
other run is writing. A second run does not wait (unless `QM_LOCK_WAIT` seconds are set) and changes
nothing. The lock is released by the operating system when its holder dies, so a killed run never leaves
a dataset locked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class DatasetBusy(Exception):
    """Another process holds this dataset's ingest lock."""

    def __init__(self, dataset: str, path: Path) -> None:
        self.dataset, self.path = dataset, path
        super().__init__(
            f"another `quantmini ingest -t {dataset}` is running (lock {path}); "
            "this run stops without changing anything. Re-run when it has finished."
        )


def lock_path(data_dir: Path, dataset: str) -> Path:
    return Path(data_dir) / "locks" / f"{dataset}.lock"


@contextmanager
def dataset_lock(data_dir: Path, dataset: str) -> Iterator[Path]:
    """Hold `dataset`'s ingest lock for the block; DatasetBusy at once when another process has it."""
    from filelock import FileLock, Timeout

    path = lock_path(data_dir, dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=float(os.environ.get("QM_LOCK_WAIT", "0")))
    except Timeout:
        raise DatasetBusy(dataset, path) from None
    try:
        yield path
    finally:
        lock.release()
