"""Streaming CSV parsing of landing files with validation (S3 lives in `loaders.flatfiles.s3`, the landing
layout in `loaders.landing`).

Parsing streams bounded batches and rejects a file at its first malformed row with an error naming file,
line and field.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import logging
import queue
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from loaders.flatfiles import settings as ff
from loaders.flatfiles.arrays import constant_strings

log = logging.getLogger(__name__)
NEW_YORK = ZoneInfo("America/New_York")
T = TypeVar("T")


# --------------------------------------------------------------------------------------------------- errors


class FlatFileError(Exception):
    """A file that cannot be loaded; the message names the file, and line and field when known."""

    def __init__(self, file: str, message: str, line: int | None = None, field: str | None = None) -> None:
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = (
            file + (f", line {line}" if line is not None else "") + (f", field {field!r}" if field else "")
        )
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------------------------------- keys


def session_from_key(key: str) -> dt.date:
    match = ff.KEY_DATE.search(key)
    if not match:
        raise ValueError(f"not a flat-file key with a date: {key!r}")
    return dt.date.fromisoformat(match.group(3))


# --------------------------------------------------------------------------------------------------- parsing


def session_bounds_ns(session: dt.date) -> tuple[int, int]:
    """[midnight, next midnight) of `session` in America/New_York, as Unix nanoseconds."""
    start = dt.datetime.combine(session, dt.time(), NEW_YORK)
    end = dt.datetime.combine(session + dt.timedelta(days=1), dt.time(), NEW_YORK)
    return int(start.timestamp()) * 1_000_000_000, int(end.timestamp()) * 1_000_000_000


def read_header(path: Path, name: str) -> list[str]:
    """Check the header line: every expected column exactly once, nothing else (order is free)."""
    try:
        with gzip.open(path, "rb") as fh:
            first = fh.readline()
    except (OSError, EOFError, zlib.error) as exc:
        raise FlatFileError(name, f"corrupt or truncated gzip: {exc}", line=1) from None
    return check_header(first.decode("utf-8", "replace"), name)


def check_header(first: str, name: str) -> list[str]:
    """The header columns of first line `first`, or FlatFileError naming the column at fault."""
    if not first.strip():
        raise FlatFileError(name, "empty file: no header", line=1)
    header = next(csv.reader([first]))
    header = [h.strip() for h in header]
    expected = set(ff.CSV_COLUMNS)
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise FlatFileError(name, "duplicate header column", line=1, field=column)
        if column not in expected:
            raise FlatFileError(name, "unexpected header column", line=1, field=column)
        seen.add(column)
    for column in ff.CSV_COLUMNS:
        if column not in seen:
            raise FlatFileError(name, "header lacks a column", line=1, field=column)
    return header


_INT64 = (-(2**63), 2**63 - 1)


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes without the line ending) of a gzip file, the header being line 1."""
    with gzip.open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            yield number, raw.rstrip(b"\r\n")


def _decode_line(raw: bytes, name: str, line: int, header: list[str]) -> str:
    """The line as text, or FlatFileError naming the line, the byte and the field it falls in."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        column = raw[: exc.start].count(b",")
        field = header[column] if column < len(header) else None
        raise FlatFileError(
            name,
            f"invalid UTF-8: byte {exc.start + 1} of the line is 0x{raw[exc.start]:02x}",
            line=line,
            field=field,
        ) from None


def _locate_bad_row(path: Path, name: str, header: list[str], skip_rows: int) -> FlatFileError | None:
    """Slow path after pyarrow refused a block: find the first bad row with its line number and field."""
    ints = {c for c, t in ff.CSV_TYPES.items() if pa.types.is_integer(t)}
    try:
        for line, raw in _lines(path):
            if line == 1 or line - 2 < skip_rows:
                continue
            text = _decode_line(raw, name, line, header)
            row = next(csv.reader([text]), [])
            if not row and not text:
                continue  # a blank line, as pyarrow skips it
            if len(row) != len(header):
                missing = header[len(row)] if len(row) < len(header) else None
                return FlatFileError(
                    name, f"expected {len(header)} fields, found {len(row)}", line=line, field=missing
                )
            for column, value in zip(header, row, strict=True):
                if column == "ticker":
                    continue
                try:
                    number = int(value) if column in ints else float(value)
                except ValueError:
                    kind = "an integer" if column in ints else "a number"
                    return FlatFileError(name, f"{value!r} is not {kind}", line=line, field=column)
                if column in ints and not _INT64[0] <= number <= _INT64[1]:
                    return FlatFileError(
                        name, f"{value} is out of range for a 64-bit integer", line=line, field=column
                    )
    except FlatFileError as exc:
        return exc
    except (OSError, EOFError, zlib.error):
        return None
    return None


def _arrow_error(exc: pa.ArrowInvalid, name: str, header: list[str], line: int) -> FlatFileError:
    """pyarrow's message with the column it names spelled as the field (when the row could not be found)."""
    text = str(exc)
    match = re.search(r"In CSV column #(\d+): ", text)
    field = None
    if match and int(match.group(1)) < len(header):
        field = header[int(match.group(1))]
        text = text.replace(match.group(0), "")
    return FlatFileError(name, f"{text} (in the block starting at line {line})", field=field)


def _locate_duplicate(path: Path, name: str, header: list[str]) -> FlatFileError:
    """Slow path when a file repeats a (ticker, window_start): name both lines and how they differ."""
    ticker, start = header.index("ticker"), header.index("window_start")
    seen: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for line, raw in _lines(path):
        if line == 1 or not raw:
            continue
        row = next(csv.reader([raw.decode("utf-8")]))
        key = (row[ticker], row[start])
        if key in seen:
            first, other = seen[key]
            differ = [c for c, a, b in zip(header, other, row, strict=True) if a != b]
            what = f"different {', '.join(differ)}" if differ else "the same values"
            return FlatFileError(
                name,
                f"ticker {key[0]!r} at window_start {key[1]} repeats line {first} with {what}",
                line=line,
                field="window_start",
            )
        seen[key] = (line, row)
    return FlatFileError(name, "repeated (ticker, window_start) rows", field="window_start")


def _first_index(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(
        pc.indices_nonzero(mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask)[0].as_py()
    )


def _validate(batch: pa.RecordBatch, name: str, first_line: int, lo: int, hi: int, session: dt.date) -> None:
    """Raise FlatFileError at the first row with an empty field, a non-finite value or a foreign timestamp."""
    for column in ff.CSV_COLUMNS:
        array = batch.column(column)
        if array.null_count:
            index = _first_index(pc.is_null(array))
            raise FlatFileError(name, "missing value", line=first_line + index, field=column)
    tickers = batch.column("ticker")
    if pc.min(pc.binary_length(tickers)).as_py() == 0:
        empty = pc.equal(pc.binary_length(tickers), 0)
        raise FlatFileError(name, "missing value", line=first_line + _first_index(empty), field="ticker")
    for column in ("volume", "open", "close", "high", "low"):
        finite = pc.is_finite(batch.column(column))
        if not pc.all(finite).as_py():
            index = _first_index(pc.invert(finite))
            value = batch.column(column)[index].as_py()
            raise FlatFileError(
                name, f"{value!r} is not a finite number", line=first_line + index, field=column
            )
    _check_values(batch, name, first_line)
    starts = batch.column("window_start")
    bounds = pc.min_max(starts).as_py()
    if bounds["min"] < lo or bounds["max"] >= hi:
        outside = pc.or_(pc.less(starts, lo), pc.greater_equal(starts, hi))
        index = _first_index(outside)
        value = starts[index].as_py()
        when = dt.datetime.fromtimestamp(value / 1e9, NEW_YORK) if abs(value) < 1e19 else value
        raise FlatFileError(
            name,
            f"window_start {value} ({when}) is outside session {session.isoformat()} (America/New_York)",
            line=first_line + index,
            field="window_start",
        )


def _values_ok(batch: pa.RecordBatch) -> bool:
    """Whether every row meets the bronze row contract: a few aggregates and array-to-array comparisons.

    No comparison with a Python number here: that would import pandas (`loaders.flatfiles.arrays`).
    """
    o, h, lo, c = (batch.column(x) for x in ("open", "high", "low", "close"))
    if min(pc.min(x).as_py() for x in (o, h, lo, c)) <= 0:
        return False
    if pc.min(batch.column("volume")).as_py() < 0 or pc.min(batch.column("transactions")).as_py() < 0:
        return False
    return not (
        pc.any(pc.less(h, lo)).as_py()
        or pc.any(pc.less(h, pc.max_element_wise(o, c))).as_py()
        or pc.any(pc.greater(lo, pc.min_element_wise(o, c))).as_py()
    )


def _check_values(batch: pa.RecordBatch, name: str, first_line: int) -> None:
    """The bronze row contract (docs/ingestion.md, "Bad rows"): the earliest violating row rejects the file."""
    if _values_ok(batch):
        return
    o, h, lo, c = (batch.column(x) for x in ("open", "high", "low", "close"))
    v, t = batch.column("volume"), batch.column("transactions")
    rules: list[tuple[Any, str, Callable[[int], str]]] = [
        *(
            (
                pc.less_equal(batch.column(x), 0),
                x,
                lambda i, x=x: f"price {batch.column(x)[i].as_py()!r} is not positive",
            )
            for x in ("open", "high", "low", "close")
        ),
        (pc.less(v, 0), "volume", lambda i: f"volume {v[i].as_py()!r} is negative"),
        (pc.less(t, 0), "transactions", lambda i: f"transactions {t[i].as_py()!r} is negative"),
        (pc.less(h, lo), "high", lambda i: f"high {h[i].as_py()!r} is below low {lo[i].as_py()!r}"),
        (
            pc.less(h, pc.max_element_wise(o, c)),
            "high",
            lambda i: f"high {h[i].as_py()!r} is below open {o[i].as_py()!r} or close {c[i].as_py()!r}",
        ),
        (
            pc.greater(lo, pc.min_element_wise(o, c)),
            "low",
            lambda i: f"low {lo[i].as_py()!r} is above open {o[i].as_py()!r} or close {c[i].as_py()!r}",
        ),
    ]
    worst: tuple[int, str, Callable[[int], str]] | None = None
    for mask, column, message in rules:
        if pc.any(mask).as_py():
            index = _first_index(mask)
            if worst is None or index < worst[0]:
                worst = (index, column, message)
    if worst is not None:
        index, column, message = worst
        raise FlatFileError(name, message(index), line=first_line + index, field=column)


class _KeyTracker:
    """(ticker, window_start) of every row of one file, to reject a file that repeats a bar.

    Polygon's files are sorted by ticker, then window_start: while every row's key is greater than the one
    before it (one vectorised comparison per batch, and one across batches), no key can repeat. A file out
    of that order is checked with one hash aggregation over all its keys at the end, so the two key
    columns of the file are held (about 17 bytes a row) until then.
    """

    def __init__(self) -> None:
        self.tickers: list[pa.Array] = []
        self.starts: list[pa.Array] = []
        self.rows = 0
        self.ordered = True
        self._last: tuple[str, int] | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        tickers, starts = batch.column("ticker"), batch.column("window_start")
        self.tickers.append(tickers)
        self.starts.append(starts)
        self.rows += batch.num_rows
        if self.ordered and batch.num_rows:
            first = (tickers[0].as_py(), starts[0].as_py())
            self.ordered = (self._last is None or self._last < first) and _increasing(tickers, starts)
            self._last = (tickers[-1].as_py(), starts[-1].as_py())

    def repeats(self) -> bool:
        if self.rows < 2 or self.ordered:
            return False
        keys = pa.table({"t": pa.chunked_array(self.tickers), "w": pa.chunked_array(self.starts)})
        distinct = keys.group_by(["t", "w"]).aggregate([]).num_rows
        return distinct < self.rows


def _increasing(tickers: pa.Array, starts: pa.Array) -> bool:
    """Whether every (ticker, window_start) is greater than the one before it (tickers compared as bytes)."""
    n = len(tickers)
    if n < 2:
        return True
    t0, t1, s0, s1 = tickers.slice(0, n - 1), tickers.slice(1), starts.slice(0, n - 1), starts.slice(1)
    later = pc.or_(pc.less(t0, t1), pc.and_(pc.equal(t0, t1), pc.less(s0, s1)))
    return bool(pc.all(later).as_py())


def _to_bronze(batch: pa.RecordBatch | pa.Table, key: str, etag: str, load_id: str) -> pa.Table:
    """Bronze column order and types; the three lineage columns are dictionary-encoded constants."""
    n = batch.num_rows

    def constant(value: str) -> pa.DictionaryArray:
        return constant_strings(value, n)

    window_start = batch.column("window_start").cast(pa.timestamp("ns", tz="UTC"))
    window_start = window_start.cast(pa.timestamp("us", tz="UTC"), safe=False)
    return pa.Table.from_arrays(
        [
            batch.column("ticker"),
            batch.column("volume"),
            batch.column("open"),
            batch.column("high"),
            batch.column("low"),
            batch.column("close"),
            window_start,
            batch.column("transactions"),
            constant(key),
            constant(etag),
            constant(load_id),
        ],
        names=ff.BRONZE_SCHEMA.names,
    )


class ThreadedGunzip(io.RawIOBase):
    """A readable file of `path`'s decompressed bytes, inflated by a background thread.

    Inflating is about half the cost of reading a flat file; done in its own thread it overlaps CSV
    parsing instead of running in series with it. At most `depth` chunks wait in memory.
    """

    def __init__(self, path: Path, chunk: int = 4 << 20, depth: int = 3) -> None:
        super().__init__()
        self._chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._buffer = memoryview(b"")
        self._eof = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._inflate, args=(path, chunk), daemon=True, name="gunzip")
        self._thread.start()

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._chunks.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _inflate(self, path: Path, chunk: int) -> None:
        try:
            with pa.input_stream(str(path), compression="gzip") as stream:
                while data := stream.read(chunk):
                    if not self._put(data):
                        return
            self._put(None)
        except BaseException as exc:  # handed to the reader
            self._put(exc)

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        while not self._buffer and not self._eof:
            item = self._chunks.get()
            if item is None:
                self._eof = True
            elif isinstance(item, BaseException):
                self._eof = True
                raise item
            else:
                self._buffer = memoryview(item)

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (a short read is fine, b"" means the end); a whole chunk is handed over uncopied."""
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(1 << 24), b""))
        self._fill()
        if size >= len(self._buffer):
            view, self._buffer = self._buffer, memoryview(b"")
            return view.obj if len(view) == len(view.obj) else view.tobytes()  # type: ignore[arg-type]
        out = self._buffer[:size].tobytes()
        self._buffer = self._buffer[size:]
        return out

    def readinto(self, target: Any) -> int:
        self._fill()
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._chunks.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)
        super().close()


def _inflate_small(path: Path) -> bytes | None:
    """A small file's whole CSV text, inflated in one call; None for a large or damaged file.

    Most of a small file's cost is per-file setup (an inflating thread, a streaming reader over it); a
    daily file of a few thousand rows parses several times faster from memory. A damaged file takes the
    streaming path, which reports the line where the damage starts.
    """
    if path.stat().st_size > ff.INFLATE_IN_MEMORY_BYTES:
        return None
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error):
        return None


def read_flatfile(
    path: Path,
    key: str,
    etag: str,
    load_id: str,
    *,
    block_size: int = ff.CSV_BLOCK_SIZE,
    batch_rows: int = ff.BATCH_ROWS,
) -> Iterator[pa.Table]:
    """Stream one landing file as bronze tables of at most about `batch_rows` rows.

    Raises FlatFileError on the first problem; rows already yielded must then be discarded by the caller
    (the bronze commit does that: a session without its manifest row is never swapped in).
    """
    session = session_from_key(key)
    whole = _inflate_small(path)
    if whole is not None:
        header = check_header(whole[: whole.find(b"\n") + 1].decode("utf-8", "replace"), key)
    else:
        header = read_header(path, key)
    lo, hi = session_bounds_ns(session)
    convert = pacsv.ConvertOptions(column_types=ff.CSV_TYPES, include_columns=list(ff.CSV_COLUMNS))
    read = pacsv.ReadOptions(block_size=block_size, use_threads=True)
    rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    inflated: ThreadedGunzip | None = None
    keys = _KeyTracker()
    try:
        if whole is not None:
            source: Any = pa.BufferReader(whole)
        else:
            inflated = ThreadedGunzip(path)
            source = pa.PythonFile(inflated, mode="r")
        reader = pacsv.open_csv(source, read_options=read, convert_options=convert)
        for batch in reader:
            if batch.num_rows == 0:
                continue
            _validate(batch, key, rows + pending_rows + 2, lo, hi, session)
            keys.add(batch)
            pending.append(batch)
            pending_rows += batch.num_rows
            if pending_rows >= batch_rows:
                yield _to_bronze(pa.Table.from_batches(pending), key, etag, load_id)
                rows += pending_rows
                pending, pending_rows = [], 0
    except pa.ArrowInvalid as exc:
        located = _locate_bad_row(path, key, header, rows + pending_rows)
        raise (located or _arrow_error(exc, key, header, rows + pending_rows + 2)) from None
    except (OSError, EOFError, zlib.error) as exc:
        raise FlatFileError(
            key, f"corrupt or truncated gzip after line {rows + pending_rows + 1}: {exc}"
        ) from None
    finally:
        if inflated is not None:
            inflated.close()  # stops the inflating thread when parsing ends early
    if keys.repeats():
        raise _locate_duplicate(path, key, header)
    if pending_rows:
        yield _to_bronze(pa.Table.from_batches(pending), key, etag, load_id)
        rows += pending_rows
    if rows == 0:
        raise FlatFileError(key, "no data rows after the header", line=2)


# --------------------------------------------------------------------------------------------------- threads

_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Run `items` in a background thread, `depth` results ahead: CSV decoding overlaps Parquet writing.

    Memory stays bounded (at most depth + 2 items alive); an exception in the producer is re-raised here.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            slots.put(exc)

    worker = threading.Thread(target=produce, name="flatfile-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
