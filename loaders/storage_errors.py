"""Plain-language messages for the storage failures a scheduled run meets: a full disk, a read-only or
unwritable data dir. `quantmini` prints one of these instead of a traceback and exits 1."""

from __future__ import annotations

import errno
import logging

HINTS = {
    errno.ENOSPC: "the disk holding it is full: free space (or set QM_DATA_DIR to a larger disk) and re-run",
    errno.EDQUOT: "the disk quota is used up: free space (or set QM_DATA_DIR elsewhere) and re-run",
    errno.EROFS: "it is on a read-only file system: set QM_DATA_DIR to a writable folder",
    errno.EACCES: "this user may not write there: fix its permissions or set QM_DATA_DIR to a writable folder",
    errno.EPERM: "this user may not write there: fix its permissions or set QM_DATA_DIR to a writable folder",
    errno.ENOTDIR: "a part of that path is a file, not a folder: set QM_DATA_DIR to a folder",
}
AFTER = (
    "Nothing already loaded was changed; the next run finishes or redoes the interrupted work "
    "(`quantmini status` shows it as interrupted meanwhile)."
)


def storage_error(exc: BaseException) -> OSError | None:
    """The full-disk / read-only / permission OSError in `exc`'s cause chain (dlt wraps them), if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in HINTS:
            return current
        current = current.__cause__ or current.__context__
    return None


def describe(error: OSError) -> str:
    where = error.filename or "the data dir"
    reason = error.strerror or str(error)
    return f"cannot write {where} ({reason}): {HINTS[error.errno]}. {AFTER}"


_STORAGE_TEXTS = ("No space left on device", "Read-only file system", "Disk quota exceeded")


class _OneLine(logging.Filter):
    """Turns dlt's log records about a full or read-only disk into one line (no traceback): the command
    prints what to do once, at the end."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = storage_error(record.exc_info[1]) if record.exc_info and record.exc_info[1] else None
        text = record.getMessage()
        if error is None and not any(t in text for t in _STORAGE_TEXTS):
            return True
        first = text.split("Traceback (most recent call last)")[0].strip()
        cause = error.strerror if error is not None else next(t for t in _STORAGE_TEXTS if t in text)
        record.msg, record.args = f"{first} ({cause})", None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def quiet_dlt_storage_tracebacks() -> None:
    """Install the one-line filter on dlt's logger (idempotent)."""
    logger = logging.getLogger("dlt")
    if not any(isinstance(f, _OneLine) for f in logger.filters):
        logger.addFilter(_OneLine())
