"""Health checks on a Qlib provider dir (gold), of the kind Qlib's ``check_data_health`` runs.

Each daily instrument of ``instruments/all.txt`` is read from its ``.day.bin`` files (numpy, no Qlib) and
checked session by session inside its span. Findings carry the ticker and the session. The rule for
the severity (also in docs/operations.md):

- **error** (the data is wrong; ``quantmini validate`` exits 1): a required field file
  (``open high low close volume factor``) missing; a session with some of those values and not others
  (a partial row); a factor that is not positive; an adjusted close that moves more than 50 % from the
  previous traded session while the raw close (``$close / $factor``) did not, i.e. the adjustment itself
  made the jump (a factor applied on the wrong session).
- **warning** (worth a look, may be real; exit code unchanged): a raw close that moves more than 50 %
  with no factor change on that session to explain it (no split or dividend: a genuine move, or a split
  missing from the reference data); adjusted volume above ``VOLUME_SPIKE`` times the median of the
  previous ``VOLUME_WINDOW`` traded sessions.

A session where every field is NaN is a session without a bar (a halt, a gap in coverage): gold writes
NaN for it by contract, so it is not reported. A raw jump that a factor change explains (the adjusted
close moves 50 % or less) is a corporate action and not reported either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REQUIRED_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "factor")
JUMP = 0.5  # relative close-to-close move that is looked at
VOLUME_SPIKE = 10.0  # adjusted volume over this multiple of the recent median is a spike
VOLUME_WINDOW = 20  # previous traded sessions the median covers (and needs)
MAX_LISTED = 20  # findings listed per check; the rest are counted in one line
LOOKBACK = 4 * VOLUME_WINDOW  # sessions read before the first checked one by a check of new sessions


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning
    check: str  # missing_field | partial_row | bad_factor | adjustment_jump | price_jump | volume_spike
    ticker: str
    session: str  # YYYY-MM-DD, or "" for the whole instrument
    message: str


def _read(path: Path, calendar_size: int, from_slot: int = 0) -> tuple[int, np.ndarray, bool]:
    """(first calendar slot read, values, whether earlier values were left out) of a feature file, read
    from calendar slot `from_slot` on (the whole file when its span starts there or later)."""
    with open(path, "rb") as fh:
        head = np.frombuffer(fh.read(4), dtype="<f4")
        if head.size == 0:
            raise ValueError(f"{path}: empty feature file")
        start = int(head[0])
        skip = max(0, from_slot - start)
        if skip:
            fh.seek(4 * (1 + skip))
        values = np.frombuffer(fh.read(), dtype="<f4")
    if start < 0 or start + skip + values.size > calendar_size:
        raise ValueError(f"{path}: span {start}..{start + skip + values.size - 1} outside the calendar")
    return start + skip, values, skip > 0


def _aligned(
    folder: Path, calendar_size: int, from_slot: int = 0
) -> tuple[int, dict[str, np.ndarray], list[str], bool]:
    """The required fields over the union of their spans (NaN-padded) from calendar slot `from_slot` on,
    the names of missing files, and whether earlier values were left out."""
    spans: dict[str, tuple[int, np.ndarray]] = {}
    missing = []
    cut = False
    for name in REQUIRED_FIELDS:
        path = folder / f"{name}.day.bin"
        if path.exists():
            first_slot, values, skipped = _read(path, calendar_size, from_slot)
            spans[name] = (first_slot, values)
            cut = cut or skipped
        else:
            missing.append(name)
    if not spans:
        return 0, {}, missing, cut
    first = min(s for s, _ in spans.values())
    last = max(s + v.size for s, v in spans.values())
    out = {}
    for name, (start, values) in spans.items():
        full = np.full(last - first, np.nan, dtype=np.float64)
        full[start - first : start - first + values.size] = values
        out[name] = full
    return first, out, missing, cut


def _previous_valid(values: np.ndarray) -> np.ndarray:
    """For each slot, the last non-NaN value strictly before it (NaN when none)."""
    idx = np.where(~np.isnan(values), np.arange(values.size), -1)
    last = np.maximum.accumulate(idx)
    prev = np.concatenate(([-1], last[:-1]))
    return np.where(prev >= 0, values[np.maximum(prev, 0)], np.nan)


def _volume_spikes(volume: np.ndarray) -> np.ndarray:
    """Slots whose volume exceeds VOLUME_SPIKE x the median of the previous VOLUME_WINDOW traded sessions."""
    traded = np.flatnonzero(~np.isnan(volume))
    spikes = np.zeros(volume.size, dtype=bool)
    if traded.size <= VOLUME_WINDOW:
        return spikes
    series = volume[traded]
    windows = np.lib.stride_tricks.sliding_window_view(series[:-1], VOLUME_WINDOW)
    median = np.median(windows, axis=1)
    current = series[VOLUME_WINDOW:]
    hit = (median > 0) & (current > VOLUME_SPIKE * median)
    spikes[traded[VOLUME_WINDOW:][hit]] = True
    return spikes


def _enough_history(data: dict[str, np.ndarray], first: int, since: int) -> bool:
    """The values read before slot `since` hold what its checks look back at: a previous traded close
    and factor, and `VOLUME_WINDOW` previous traded volumes."""
    before = max(0, since - first)
    close, volume = data.get("close"), data.get("volume")
    if close is None or volume is None or "factor" not in data:
        return False
    traded_closes = np.count_nonzero(~np.isnan(close[:before]) & ~np.isnan(data["factor"][:before]))
    return traded_closes > 0 and np.count_nonzero(~np.isnan(volume[:before])) >= VOLUME_WINDOW


def check_instrument(
    ticker: str, folder: Path, calendar: list[str], since: int | None = None
) -> list[Finding]:
    """Every finding for one instrument's daily feature files; with `since` (a calendar index), the
    findings on sessions from that one on, reading only the end of the files (plus what the checks look
    back at: `LOOKBACK` sessions, the whole files when those are not enough)."""
    if since is None:
        first, data, missing, _ = _aligned(folder, len(calendar))
    else:
        first, data, missing, cut = _aligned(folder, len(calendar), max(0, since - LOOKBACK))
        if cut and not _enough_history(data, first, since):
            first, data, missing, _ = _aligned(folder, len(calendar))
    found = _findings(ticker, folder, first, data, missing, calendar)
    if since is None or since >= len(calendar):
        return found if since is None else [f for f in found if not f.session]
    after = calendar[since]
    return [f for f in found if not f.session or f.session >= after]


def _findings(
    ticker: str,
    folder: Path,
    first: int,
    data: dict[str, np.ndarray],
    missing: list[str],
    calendar: list[str],
) -> list[Finding]:
    found = [
        Finding("error", "missing_field", ticker, "", f"features/{folder.name}/{name}.day.bin missing")
        for name in missing
    ]
    if not data:
        return found
    days = calendar[first : first + next(iter(data.values())).size]
    present = np.stack([~np.isnan(v) for v in data.values()])
    some, every = present.any(axis=0), present.all(axis=0)
    if not missing:
        for i in np.flatnonzero(some & ~every):
            absent = [n for n, row in zip(data, present[:, i], strict=True) if not row]
            found.append(
                Finding(
                    "error", "partial_row", ticker, days[i], f"no {', '.join(absent)} (other fields present)"
                )
            )
    factor = data.get("factor")
    close = data.get("close")
    if factor is not None:
        for i in np.flatnonzero(~np.isnan(factor) & (factor <= 0)):
            found.append(Finding("error", "bad_factor", ticker, days[i], f"$factor is {factor[i]:g}"))
    if close is not None and factor is not None:
        valid = ~np.isnan(close) & ~np.isnan(factor) & (factor > 0)
        adj = np.where(valid, close, np.nan)
        raw = np.where(valid, close / np.where(valid, factor, 1.0), np.nan)
        adj_move = adj / _previous_valid(adj) - 1
        raw_move = raw / _previous_valid(raw) - 1
        factor_prev = _previous_valid(np.where(valid, factor, np.nan))
        for i in np.flatnonzero(np.abs(np.nan_to_num(adj_move)) > JUMP):
            if abs(raw_move[i]) <= JUMP:
                found.append(
                    Finding(
                        "error",
                        "adjustment_jump",
                        ticker,
                        days[i],
                        f"adjusted close moves {adj_move[i]:+.1%} while the raw close moves {raw_move[i]:+.1%}: "
                        f"the factor ({factor_prev[i]:g} -> {factor[i]:g}) made the jump",
                    )
                )
            else:
                changed = not np.isclose(factor_prev[i], factor[i], rtol=1e-6)
                cause = (
                    f"the factor change ({factor_prev[i]:g} -> {factor[i]:g}) does not account for it"
                    if changed
                    else "no split or dividend on this session"
                )
                found.append(
                    Finding(
                        "warning",
                        "price_jump",
                        ticker,
                        days[i],
                        f"close moves {raw_move[i]:+.1%} (adjusted {adj_move[i]:+.1%}); {cause}",
                    )
                )
    volume = data.get("volume")
    if volume is not None:
        for i in np.flatnonzero(_volume_spikes(volume)):
            found.append(
                Finding(
                    "warning",
                    "volume_spike",
                    ticker,
                    days[i],
                    f"volume {volume[i]:,.0f} is over {VOLUME_SPIKE:g}x the median of the previous "
                    f"{VOLUME_WINDOW} traded sessions",
                )
            )
    return found


def check_provider(
    root: Path, universe: str = "all", previous: dict[str, Any] | None = None
) -> tuple[list[Finding], dict[str, Any]]:
    """Health findings for every instrument of ``instruments/<universe>.txt`` under the provider dir, and
    what to record as checked (`previous` of the next run).

    With `previous` (recorded by an earlier clean check), an instrument whose files were only appended
    to since (its gold manifest token is the one recorded) is checked on the sessions after the last one
    checked then; an instrument written whole since (a split or dividend restating its history, a
    backfilled day, a full export) or new is checked over its whole history.
    """
    from loaders.gold.symbols import SymbolError, feature_dir_name, from_qlib_symbol
    from loaders.gold.writer import read_manifest

    calendar = (root / "calendars" / "day.txt").read_text().split()
    symbols = (read_manifest(root).get("day") or {}).get("symbols") or {}
    tokens = {entry["symbol"]: entry.get("token") for entry in symbols.values()}
    checked = {"last_session": calendar[-1] if calendar else "", "tokens": tokens}
    since: int | None = None
    old_tokens: dict[str, Any] = {}
    if previous and previous.get("last_session") in calendar:
        since = calendar.index(previous["last_session"]) + 1
        old_tokens = previous.get("tokens") or {}
    findings: list[Finding] = []
    for line in (root / "instruments" / f"{universe}.txt").read_text().splitlines():
        if not line.strip():
            continue
        symbol = line.split("\t")[0]
        try:
            ticker = from_qlib_symbol(symbol)
        except SymbolError:  # a shortened name of a very long ticker: report it under its Qlib name
            ticker = symbol
        folder = root / "features" / feature_dir_name(symbol)
        if not folder.is_dir():
            findings.append(Finding("error", "missing_field", ticker, "", f"features/{folder.name}/ missing"))
            continue
        token = tokens.get(symbol)
        scoped = since is not None and token is not None and old_tokens.get(symbol) == token
        findings.extend(check_instrument(ticker, folder, calendar, since if scoped else None))
    return findings, checked
