"""Vectorised Qlib bin writer with incremental updates that stay byte-identical to a full export.

The layout follows Qlib's ``FileFeatureStorage``: ``features/<dir>/<field>.<freq>.bin`` holds
little-endian float32, element 0 is the start index into the calendar, then one value per calendar
slot from the instrument's first to its last row, NaN where it has no row. Every series is NaN-padded
against the global calendar, so an append after a missing day never shifts data (the failure mode of
``dump_bin.py``'s update mode).

Rows are never sorted. Each ticker gets a span of slots in a (fields x slots) float32 array, NaN-filled
once; every row's slot is computed from its ticker's offset and its calendar index, and one numpy
scatter per batch of tickers places all values. Each field file is then a contiguous slice of one row
of that array, written with a single ``os.write``. Tickers are processed in batches of bounded size, so
memory stays bounded when sparse minute series span far more slots than they have rows.

Daily exports go through `write_planned`: the exporter works out in the database which tickers only
gained rows and which changed (a per-ticker fingerprint of silver's rows, recorded in the manifest), and
only their rows are fetched and written, streamed in batches. The minute frequency uses `write_freq`:
incremental mode keeps a small manifest per frequency: the calendar start, the field list and, per
ticker, its first/last row key, file length and a SHA-256 hash of its files' bytes (the field files
concatenated in field order) and a token that changes whenever its files are written whole (new,
rewritten, full export) and is kept on an append. A ticker whose new files begin with exactly the bytes recorded (the hash
of the new layout cut at the old length) is appended; any other change (a backfilled day, a split that
rescales history, a new first day) rewrites that ticker; a new calendar start or field list rewrites the
frequency.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loaders.gold.symbols import feature_dir_name, to_qlib_symbol
from loaders.landing import atomic_write

log = logging.getLogger(__name__)

MANIFEST_NAME = ".quantmini-manifest.json"
#: 5: daily entries carry their row count and the frequency the newest `built_at` of silver it consumed
#: (or, from a mart without `built_at`, row fingerprints); 4: row fingerprints only, read by the first
#: export after an upgrade (it compares fingerprints once); 3: file hashes only. Another version means a
#: full export
MANIFEST_VERSION = 5
READABLE_VERSIONS = (4, 5)

#: floats per layout batch (fields x slots): 16 MB; batches of tickers keep memory flat on sparse minute series
BATCH_FLOATS = 1 << 22
#: rows taken from silver before they are placed and written (a planned write streams its rows)
FETCH_ROWS = 1 << 20

_DIR_FD = os.open in os.supports_dir_fd and os.mkdir in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")


class ExportError(ValueError):
    """Bad silver input or an inconsistent provider directory; the message names the row or file."""


@dataclass(frozen=True)
class Calendar:
    """A Qlib calendar: sorted keys (days or UTC ns) and the labels written to ``calendars/<freq>.txt``."""

    freq: str
    keys: np.ndarray
    labels: list[str]

    def describe(self, key: int) -> str:
        if self.freq == "day":
            return str(np.datetime64(int(key), "D"))
        return str(np.datetime64(int(key), "ns")) + "Z"

    def locate(self, keys: np.ndarray) -> np.ndarray:
        """Calendar index of each key; a key that is not in the calendar maps to a slot holding another key."""
        if self.freq == "day" and len(self.keys):
            # days are small integers: a lookup table is a single gather instead of a binary search
            lo = int(self.keys[0])
            table = np.zeros(int(self.keys[-1]) - lo + 1, dtype=np.int64)
            table[self.keys - lo] = np.arange(len(self.keys))
            return table[np.clip(keys - lo, 0, len(table) - 1)]
        return np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)


@dataclass(frozen=True)
class Block:
    """Rows of one frequency placed on the calendar, in whatever order silver returned them.

    ``tickers`` are the distinct tickers (first-seen order); per row, ``codes`` indexes them and
    ``positions`` is the calendar index; ``values`` is (fields, rows) float32. ``first``/``last`` are each
    ticker's first and last calendar index. ``grouped`` says every ticker's rows are one run, in code
    order, so a batch of tickers is a slice of rows. ``source`` names the relation in error messages.
    """

    tickers: list[str]
    codes: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    first: np.ndarray
    last: np.ndarray
    fields: tuple[str, ...]
    grouped: bool
    source: str

    @property
    def rows(self) -> int:
        return int(self.codes.shape[0])


@dataclass
class FreqStats:
    """What one export of one frequency did; also the summary row of the dbt model."""

    freq: str
    mode: str
    symbols: int = 0
    rows: int = 0
    calendar_length: int = 0
    written: int = 0
    appended: int = 0
    rewritten: int = 0
    unchanged: int = 0
    removed: int = 0
    files: int = 0
    bytes: int = 0
    notes: list[str] = field(default_factory=list)


def make_block(
    tickers: pa.Array | pa.ChunkedArray,
    keys: np.ndarray,
    values: np.ndarray,
    fields: Sequence[str],
    calendar: Calendar,
    what: str,
) -> Block:
    """Place rows on the calendar and find each ticker's span; rows off the calendar are rejected.

    ``values`` is (fields, rows) float32. Repeated rows are caught when the layout is built (two rows
    landing in one slot), which needs no sort.
    """
    if isinstance(tickers, pa.ChunkedArray):
        tickers = tickers.combine_chunks()
    encoded = pc.dictionary_encode(tickers)
    names = [str(t) for t in encoded.dictionary.to_pylist()]
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    positions = calendar.locate(keys)
    off = np.flatnonzero(calendar.keys[positions] != keys)
    if off.size:
        row = int(off[0])
        raise ExportError(
            f"{what}: ticker {names[codes[row]]!r} has a row at {calendar.describe(keys[row])}, which is not in "
            f"the NYSE {calendar.freq} calendar ({off.size} such rows)"
        )
    first = np.full(len(names), len(calendar.keys), dtype=np.int64)
    last = np.full(len(names), -1, dtype=np.int64)
    np.minimum.at(first, codes, positions)
    np.maximum.at(last, codes, positions)
    grouped = bool(np.all(codes[1:] >= codes[:-1]))  # dictionary codes follow first appearance
    return Block(names, codes, positions, values, first, last, tuple(fields), grouped, what)


def _batches(block: Block, lengths: np.ndarray) -> Iterator[tuple[int, int]]:
    """Consecutive ticker-code ranges whose layout holds at most ``BATCH_FLOATS`` (or one ticker)."""
    width = len(block.fields)
    begin, used = 0, 0
    for i, length in enumerate(lengths.tolist()):
        if used and (used + length) * width > BATCH_FLOATS:
            yield begin, i
            begin, used = i, 0
        used += length
    if used:
        yield begin, len(lengths)


def _layout(
    block: Block, begin: int, end: int, lengths: np.ndarray, calendar: Calendar
) -> tuple[np.ndarray, np.ndarray]:
    """(fields, slots) float32 holding the files of tickers ``begin:end`` side by side, NaN-padded.

    Ticker ``begin + k``'s files start at slot ``offsets[k]``: its start index, then one slot per calendar
    entry. Two rows of one ticker landing in one slot are a duplicate and rejected with ticker and time.
    """
    spans = lengths[begin:end]
    offsets = np.zeros(end - begin, dtype=np.int64)
    np.cumsum(spans[:-1], out=offsets[1:])
    if block.grouped:
        lo, hi = np.searchsorted(block.codes, [begin, end])
        rows: slice | np.ndarray = slice(int(lo), int(hi))
    else:
        rows = np.flatnonzero((block.codes >= begin) & (block.codes < end))
    codes = block.codes[rows]
    slots = offsets[codes - begin] + 1 + block.positions[rows] - block.first[codes]
    total = int(spans.sum())
    taken = np.zeros(total, dtype=bool)
    taken[slots] = True
    if int(np.count_nonzero(taken)) != slots.shape[0]:
        counts = np.bincount(slots, minlength=total)
        row = int(np.flatnonzero(counts[slots] > 1)[0])
        code, pos = int(codes[row]), int(block.positions[rows][row])
        raise ExportError(
            f"{block.source}: ticker {block.tickers[code]!r} has more than one row at "
            f"{calendar.describe(calendar.keys[pos])}"
        )
    out = np.full((len(block.fields), total), np.nan, dtype="<f4")
    out[:, offsets] = block.first[begin:end].astype("<f4")
    out[:, slots] = block.values[:, rows]
    return out, offsets


def _hash(rows: Sequence[memoryview], offset: int, length: int) -> str:
    """SHA-256 of one ticker's field files cut at ``length`` floats, concatenated in field order."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(row[offset : offset + length])
    return digest.hexdigest()[:32]


def _prefix_kept(
    old: dict[str, Any],
    first_key: int,
    last_key: int,
    rows: Sequence[memoryview],
    at: int,
    length: int,
    digest: str,
) -> bool:
    """The ticker's new files begin with exactly the bytes the manifest recorded, so they can be appended to."""
    if old["first"] != first_key or old["last"] > last_key:
        return False
    kept = int(old["length"])
    return (digest if kept == length else _hash(rows, at, kept)) == old["hash"]


class _FolderWriter:
    """Writes a ticker's field files: one ``open``/``write``/``close`` each, folders opened relative to
    ``features/`` (no path walk per file) where the platform allows it."""

    def __init__(self, features_dir: Path, suffixes: Sequence[str]) -> None:
        features_dir.mkdir(parents=True, exist_ok=True)
        self.base = os.fspath(features_dir)
        self.suffixes = list(suffixes)
        self.base_fd = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY) if _DIR_FD else -1

    def write(self, folder: str, parts: Sequence[memoryview], append: bool, replace: bool = False) -> None:
        """Write (or append to) a folder's field files; `replace` rewrites existing files through a
        temporary file and a rename, so a reader of the provider dir never sees a half-written file."""
        if replace:
            path = os.path.join(self.base, folder)
            for suffix, part in zip(self.suffixes, parts, strict=True):
                tmp = os.path.join(path, f".{suffix}.tmp")
                with open(tmp, "wb") as fh:
                    fh.write(part)
                os.replace(tmp, os.path.join(path, suffix))
            return
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        if self.base_fd < 0:
            path = os.path.join(self.base, folder)
            os.makedirs(path, exist_ok=True)
            for suffix, part in zip(self.suffixes, parts, strict=True):
                fd = os.open(os.path.join(path, suffix), flags, 0o644)
                try:
                    os.write(fd, part)
                finally:
                    os.close(fd)
            return
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, dir_fd=self.base_fd)
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY, dir_fd=self.base_fd)
        try:
            for suffix, part in zip(self.suffixes, parts, strict=True):
                fd = os.open(suffix, flags, 0o644, dir_fd=folder_fd)
                try:
                    os.write(fd, part)
                finally:
                    os.close(fd)
        finally:
            os.close(folder_fd)

    def close(self) -> None:
        if self.base_fd >= 0:
            os.close(self.base_fd)
            self.base_fd = -1


def _sizes_match(folder: Path, fields: Sequence[str], freq: str, size: int) -> bool:
    """Every field file exists with the size the manifest recorded (else an export was interrupted)."""
    base = os.fspath(folder)
    for name in fields:
        try:
            if os.stat(os.path.join(base, f"{name}.{freq}.bin")).st_size != size:
                return False
        except FileNotFoundError:
            return False
    return True


def read_manifest(root: Path) -> dict[str, Any]:
    path = root / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        log.warning("ignoring unreadable manifest %s (%s); doing a full export", path, exc)
        return {}
    if data.get("version") not in READABLE_VERSIONS:
        return {}
    return data


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    manifest["version"] = MANIFEST_VERSION
    atomic_write(root / MANIFEST_NAME, json.dumps(manifest, sort_keys=True, separators=(",", ":")) + "\n")


def _remove_freq_files(features_dir: Path, freq: str, dirs: Sequence[str] | None = None) -> int:
    """Delete ``*.<freq>.bin`` files (of the given folders, or all) and folders left empty."""
    removed = 0
    folders = [features_dir / d for d in dirs] if dirs is not None else list(features_dir.glob("*"))
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.glob(f"*.{freq}.bin"):
            path.unlink()
            removed += 1
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def clear_freq(root: Path, freq: str, instruments_name: str) -> None:
    """Remove every file of one frequency (used when its silver table is empty)."""
    _remove_freq_files(root / "features", freq)
    for path in (root / "calendars" / f"{freq}.txt", root / "instruments" / f"{instruments_name}.txt"):
        path.unlink(missing_ok=True)
    manifest = read_manifest(root)
    if manifest.pop(freq, None) is not None:
        write_manifest(root, manifest)


def full_reasons(root: Path, block: Block, calendar: Calendar) -> list[str]:
    """Why one frequency cannot be updated in place (empty: an incremental export is possible)."""
    previous: dict[str, Any] = read_manifest(root).get(calendar.freq) or {}
    if not previous:
        return ["no previous export"]
    if previous.get("calendar_start") != calendar.labels[0]:
        return ["calendar start moved"]
    if previous.get("fields") != list(block.fields):
        return ["field list changed"]
    return []


def write_freq(root: Path, block: Block, calendar: Calendar, instruments_name: str, full: bool) -> FreqStats:
    """Write one frequency's calendar, instruments and feature bins under the provider dir ``root``."""
    freq = calendar.freq
    features_dir = root / "features"
    previous: dict[str, Any] = read_manifest(root).get(freq) or {}
    reasons = full_reasons(root, block, calendar)
    mode = "full" if full or reasons else "incremental"
    stats = FreqStats(freq=freq, mode=mode, rows=block.rows, calendar_length=len(calendar.keys))
    if mode == "full" and not full:
        stats.notes.append("full export: " + reasons[0])
    old_symbols: dict[str, Any] = {} if mode == "full" else previous.get("symbols", {})
    if mode == "full":
        _remove_freq_files(features_dir, freq)

    symbols = [to_qlib_symbol(t) for t in block.tickers]
    dirs = [feature_dir_name(s) for s in symbols]
    if len(set(dirs)) != len(dirs):  # the mapping is injective; this guards against a future edit of it
        raise ExportError(f"{freq}: two tickers map to one feature folder")
    present = set(block.tickers)
    stale = [t for t in previous.get("symbols", {}) if t not in present]
    stats.removed = len(stale)
    if stale and mode == "incremental":
        _remove_freq_files(features_dir, freq, [feature_dir_name(old_symbols[t]["symbol"]) for t in stale])

    width = len(block.fields)
    lengths = block.last - block.first + 2  # start index + one slot per calendar entry
    firsts, lasts = block.first.tolist(), block.last.tolist()
    first_keys, last_keys = calendar.keys[block.first].tolist(), calendar.keys[block.last].tolist()
    symbols_out: dict[str, Any] = {}
    writer = _FolderWriter(features_dir, [f"{name}.{freq}.bin" for name in block.fields])
    try:
        for begin, end in _batches(block, lengths):
            out, offsets = _layout(block, begin, end, lengths, calendar)
            rows = [memoryview(out[j]) for j in range(width)]
            for i, at in enumerate(offsets.tolist(), start=begin):
                ticker, length = block.tickers[i], int(lengths[i])
                digest = _hash(rows, at, length)
                symbols_out[ticker] = {
                    "symbol": symbols[i],
                    "first": first_keys[i],
                    "last": last_keys[i],
                    "length": length,
                    "hash": digest,
                }
                old = old_symbols.get(ticker)
                skip = 0  # first float to write (0: the whole file)
                # a new token each time the files are written whole: what was checked of the old ones
                # (`validate`'s health checks) no longer holds; appends and unchanged files keep theirs
                symbols_out[ticker]["token"] = uuid.uuid4().hex[:12]
                if old is None:
                    stats.written += 1
                elif _prefix_kept(
                    old, first_keys[i], last_keys[i], rows, at, length, digest
                ) and _sizes_match(features_dir / dirs[i], block.fields, freq, 4 * old["length"]):
                    symbols_out[ticker]["token"] = old.get("token") or symbols_out[ticker]["token"]
                    if length == old["length"]:
                        stats.unchanged += 1
                        continue
                    skip = int(old["length"])
                    stats.appended += 1
                else:
                    stats.rewritten += 1
                writer.write(
                    dirs[i],
                    [row[at + skip : at + length] for row in rows],
                    append=skip > 0,
                    replace=old is not None and skip == 0 and (features_dir / dirs[i]).is_dir(),
                )
                stats.files += width
                stats.bytes += 4 * (length - skip) * width
            del rows, out
    finally:
        writer.close()

    atomic_write(root / "calendars" / f"{freq}.txt", "".join(label + "\n" for label in calendar.labels))
    order = sorted(range(len(block.tickers)), key=block.tickers.__getitem__)
    lines = [f"{symbols[i]}\t{calendar.labels[firsts[i]]}\t{calendar.labels[lasts[i]]}\n" for i in order]
    atomic_write(root / "instruments" / f"{instruments_name}.txt", "".join(lines))
    manifest = read_manifest(root)
    manifest[freq] = {
        "calendar_start": calendar.labels[0],
        "fields": list(block.fields),
        "symbols": symbols_out,
    }
    write_manifest(root, manifest)
    stats.symbols = len(block.tickers)
    return stats


# ---------------------------------------------------------------------------------- planned (streamed) writes


@dataclass(frozen=True)
class SeriesPlan:
    """What silver holds for one frequency, per ticker, worked out in the database without fetching rows:
    the span (calendar keys) and row count, whether its rows up to the last key the previous export
    recorded are still the ones it wrote (`kept`: then it can be appended to), and what the manifest
    records besides (`entries`: per ticker, e.g. row fingerprints; `extra`: for the frequency, e.g. the
    newest `built_at` consumed). `notes` say how the changes were found."""

    tickers: list[str]
    first: np.ndarray
    last: np.ndarray
    counts: np.ndarray
    kept: np.ndarray
    entries: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: an SQL condition every row an append needs meets (e.g. written after the previous export), or None
    new_rows: str | None = None


def _keys(column: pa.ChunkedArray, freq: str) -> np.ndarray:
    """Calendar keys of a fetched key column: days since the epoch (day), UTC nanoseconds (1min)."""
    if freq == "day":
        return column.cast(pa.date32()).cast(pa.int32()).to_numpy().astype(np.int64)
    return column.cast(pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy()


def write_planned(
    root: Path,
    plan: SeriesPlan,
    calendar: Calendar,
    fields: Sequence[str],
    instruments_name: str,
    full: bool,
    fetch: Any,
    source: str,
) -> FreqStats:
    """Write one frequency from a `SeriesPlan`, fetching only the rows that are written.

    A ticker whose rows up to the previously exported last key have the fingerprint recorded then (and
    whose files have the recorded size) is appended to: only its rows after that key are fetched. Any
    other ticker (new, re-stated by a split or dividend, backfilled, an interrupted export) is written
    whole. `fetch(wanted)` gets `[(ticker, after_key or None), ...]` and yields Arrow record batches of
    those rows (ticker, key, one column per field), each ticker's rows together, in `wanted` order; rows
    are placed batch by batch, so memory stays bounded whatever the history length. The files are the
    bytes a full export writes.
    """
    freq = calendar.freq
    fields = tuple(fields)
    features_dir = root / "features"
    previous: dict[str, Any] = read_manifest(root).get(freq) or {}
    reasons: list[str] = []
    if not previous:
        reasons = ["no previous export"]
    elif previous.get("calendar_start") != calendar.labels[0]:
        reasons = ["calendar start moved"]
    elif previous.get("fields") != list(fields):
        reasons = ["field list changed"]
    mode = "full" if full or reasons else "incremental"
    stats = FreqStats(freq=freq, mode=mode, calendar_length=len(calendar.keys))
    if mode == "full" and not full:
        stats.notes.append("full export: " + reasons[0])
    elif mode == "incremental":
        stats.notes.extend(plan.notes)
    old_symbols: dict[str, Any] = {} if mode == "full" else previous.get("symbols", {})
    if mode == "full":
        _remove_freq_files(features_dir, freq)

    tickers = plan.tickers
    symbols = [to_qlib_symbol(t) for t in tickers]
    dirs = [feature_dir_name(s) for s in symbols]
    if len(set(dirs)) != len(dirs):
        raise ExportError(f"{freq}: two tickers map to one feature folder")
    present = set(tickers)
    stale = [t for t in old_symbols if t not in present]
    stats.removed = len(stale)
    if stale:
        _remove_freq_files(features_dir, freq, [feature_dir_name(old_symbols[t]["symbol"]) for t in stale])

    first_pos = calendar.locate(plan.first)
    last_pos = calendar.locate(plan.last)
    lengths = last_pos - first_pos + 2
    first_keys, last_keys = plan.first.tolist(), plan.last.tolist()
    symbols_out: dict[str, Any] = {}
    wanted: list[tuple[str, int | None]] = []
    index: dict[str, int] = {}
    skips: dict[str, int] = {}
    for i, ticker in enumerate(tickers):
        length = int(lengths[i])
        entry = {
            "symbol": symbols[i],
            "first": first_keys[i],
            "last": last_keys[i],
            "length": length,
            "count": int(plan.counts[i]),
            "token": uuid.uuid4().hex[:12],
            **(plan.entries[i] if plan.entries else {}),
        }
        symbols_out[ticker] = entry
        index[ticker] = i
        old = old_symbols.get(ticker)
        if old is None:
            stats.written += 1
            wanted.append((ticker, None))
            continue
        kept = (
            bool(plan.kept[i])
            and old["first"] == first_keys[i]
            and old["last"] <= last_keys[i]
            and _sizes_match(features_dir / dirs[i], fields, freq, 4 * int(old["length"]))
        )
        if not kept:
            stats.rewritten += 1
            wanted.append((ticker, None))
            continue
        entry["token"] = old.get("token") or entry["token"]
        if int(old["length"]) == length:
            stats.unchanged += 1
            continue
        stats.appended += 1
        skips[ticker] = int(old["length"])
        wanted.append((ticker, int(old["last"])))

    width = len(fields)
    writer = _FolderWriter(features_dir, [f"{name}.{freq}.bin" for name in fields])
    pending: list[pa.RecordBatch] = []
    pending_rows = 0

    def place(batches: list[pa.RecordBatch], complete: bool) -> list[pa.RecordBatch]:
        """Write the tickers whose rows are all in `batches`; return the rows of the last one when more
        of it may follow."""
        table = pa.Table.from_batches(batches)
        if table.num_rows == 0:
            return []
        names = table.column(0)
        carry: list[pa.RecordBatch] = []
        if not complete:
            last_name = names[-1]
            tail = pc.equal(names, last_name)
            cut = int(pc.index(tail, True).as_py())
            carry = table.slice(cut).to_batches()
            table = table.slice(0, cut)
            if table.num_rows == 0:
                return carry
        keys = _keys(table.column(1), freq)
        values = np.empty((width, table.num_rows), dtype=np.float32)
        for j in range(width):
            at = 0
            for chunk in table.column(2 + j).chunks:
                values[j, at : at + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
                at += len(chunk)
        block = make_block(table.column(0), keys, values, fields, calendar, source)
        codes_of = [index[t] for t in block.tickers]
        unknown = [t for t in block.tickers if t not in skips and (t, None) not in wanted_set]
        if unknown:
            raise ExportError(
                f"{freq}: silver returned rows of {unknown[0]!r}, which the plan does not write"
            )
        # every ticker spans its planned first..last (an appended one keeps its exported start)
        block = Block(
            block.tickers,
            block.codes,
            block.positions,
            block.values,
            first_pos[codes_of],
            last_pos[codes_of],
            block.fields,
            block.grouped,
            block.source,
        )
        spans = lengths[codes_of]
        for begin, end in _batches(block, spans):
            out, offsets = _layout(block, begin, end, spans, calendar)
            rows = [memoryview(out[j]) for j in range(width)]
            for k, at in enumerate(offsets.tolist(), start=begin):
                ticker = block.tickers[k]
                i = codes_of[k]
                skip = skips.get(ticker, 0)
                length = int(lengths[i])
                writer.write(
                    dirs[i],
                    [row[at + skip : at + length] for row in rows],
                    append=skip > 0,
                    replace=skip == 0 and ticker in old_symbols and (features_dir / dirs[i]).is_dir(),
                )
                done.add(ticker)
                stats.files += width
                stats.bytes += 4 * (length - skip) * width
            del rows, out
        return carry

    wanted_set = set(wanted)
    done: set[str] = set()
    try:
        if wanted:
            for batch in fetch(wanted):
                if batch.num_rows == 0:
                    continue
                pending.append(batch)
                pending_rows += batch.num_rows
                if pending_rows >= FETCH_ROWS:
                    pending = place(pending, complete=False)
                    pending_rows = sum(b.num_rows for b in pending)
            place(pending, complete=True)
    finally:
        writer.close()
    missing = [t for t, _ in wanted if t not in done]
    if missing:
        raise ExportError(f"{freq}: silver returned no rows for {missing[0]!r} ({len(missing)} ticker(s))")
    stats.rows = int(plan.counts.sum())

    atomic_write(root / "calendars" / f"{freq}.txt", "".join(label + "\n" for label in calendar.labels))
    order = sorted(range(len(tickers)), key=tickers.__getitem__)
    lines = [
        f"{symbols[i]}\t{calendar.labels[int(first_pos[i])]}\t{calendar.labels[int(last_pos[i])]}\n"
        for i in order
    ]
    atomic_write(root / "instruments" / f"{instruments_name}.txt", "".join(lines))
    manifest = read_manifest(root)
    manifest[freq] = {
        "calendar_start": calendar.labels[0],
        "fields": list(fields),
        "symbols": symbols_out,
        **plan.extra,
    }
    write_manifest(root, manifest)
    stats.symbols = len(tickers)
    return stats
