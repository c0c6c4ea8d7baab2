"""Injective mapping between Polygon tickers and Qlib instrument names.

Qlib finds an instrument's feature folder as ``code_to_fname(name).lower()``: it lower-cases the name and
prefixes Windows device names (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0-9``, ``LPT0-9``) with
``_qlib_``. Polygon tickers are case-sensitive (``ABCpA`` is a preferred share of ``ABC``, ``ABCPA`` is
another company), so using tickers as names would put two tickers in one folder. The Qlib name of a
ticker is therefore the ticker with every character that does not survive lower-casing escaped:

- ``A``-``Z``, ``0``-``9``, ``-`` and ``.`` (except a leading ``.``) are kept: ``BRK.B`` -> ``BRK.B``;
- a lower-case ASCII letter ``x`` becomes ``_x``: ``ABCpA`` -> ``ABC_pA`` (folder ``abc_pa``);
- anything else (``_``, ``%``, ``/``, ``:``, spaces, non-ASCII, a leading ``.``, a leading ``q``) becomes
  ``%XX`` per UTF-8 byte with upper-case hex: ``A_B`` -> ``A%5FB``, ``O:SPY`` -> ``O%3ASPY``;
- a name that pandas reads as NA (``NA``, ``NAN``, ``NULL``; Qlib parses instrument files with
  ``pd.read_csv``) has its first character escaped: ``NA`` -> ``%4EA``.

After lower-casing, an ``_`` is always followed by an escaped lower-case letter and a ``%`` by two hex
digits, so the folder name decodes back to the ticker: the mapping is injective on folder names, not
only on instrument names. Device names pass through unchanged and Qlib itself adds the ``_qlib_``
prefix, which no escaped name can start with (a leading ``q`` is escaped as ``%71``, never ``_q``).

A name longer than ``MAX_NAME`` characters (file systems allow 255 bytes per folder name) keeps its first
``LONG_PREFIX`` characters, then ``~`` and 32 hex digits of the ticker's SHA-256. ``~`` never appears in
an escaped name, so long and short names cannot meet, and two long tickers share a name only if they
share 128 bits of SHA-256. Such a name cannot be decoded: ``from_qlib_symbol`` says so, and the export's
``instruments`` files and manifest give the ticker.
"""

from __future__ import annotations

import hashlib
import re

_KEEP = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_DEVICE_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(10)] + [f"LPT{i}" for i in range(10)]
)
_QLIB_PREFIX = "_qlib_"
# pandas' default NA tokens: Qlib reads instruments/*.txt with pd.read_csv, which turns these into NaN
_PANDAS_NA = frozenset(
    [
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
    ]
    + ["NULL", "NaN", "None", "n/a", "nan", "null"]
)
_HEX = re.compile(r"[0-9a-fA-F]{2}")
MAX_NAME = 200
LONG_PREFIX = 160
_LONG_MARK = "~"


class SymbolError(ValueError):
    """A ticker or Qlib name that cannot be mapped."""


def to_qlib_symbol(ticker: str) -> str:
    """The instrument name Qlib users pass to ``D.features`` for a Polygon ticker."""
    if not isinstance(ticker, str) or not ticker:
        raise SymbolError(f"ticker must be a non-empty string, got {ticker!r}")
    out: list[str] = []
    for pos, char in enumerate(ticker):
        if char in _KEEP and not (pos == 0 and char == "."):
            out.append(char)
        elif char in _LOWER and not (pos == 0 and char == "q"):
            out.append("_" + char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8"))
    symbol = "".join(out)
    if symbol in _PANDAS_NA:  # "NA", "NAN", "NULL" are real tickers; keep them out of pandas' NA set
        symbol = f"%{ord(symbol[0]):02X}" + symbol[1:]
    if len(symbol) > MAX_NAME:
        digest = hashlib.sha256(ticker.encode("utf-8", "surrogatepass")).hexdigest()[:32].upper()
        symbol = symbol[:LONG_PREFIX] + _LONG_MARK + digest
    return symbol


def from_qlib_symbol(name: str) -> str:
    """The Polygon ticker of a Qlib instrument name or feature folder name (any letter case)."""
    if _LONG_MARK in name:
        raise SymbolError(
            f"{name[:40]}...: a shortened name of a ticker longer than {MAX_NAME} characters; "
            "its ticker is in the export manifest (.quantmini-manifest.json)"
        )
    if name.lower().startswith(_QLIB_PREFIX):
        name = name[len(_QLIB_PREFIX) :]
        if name.upper() not in _DEVICE_NAMES:
            raise SymbolError(f"{_QLIB_PREFIX!r} prefix on a name that is not a device name: {name!r}")
    raw = bytearray()
    pos = 0
    while pos < len(name):
        char = name[pos]
        if char == "_":
            nxt = name[pos + 1 : pos + 2].lower()
            if nxt not in _LOWER:
                raise SymbolError(f"bad escape '_' at position {pos} in Qlib name {name!r}")
            raw.extend(nxt.encode())
            pos += 2
        elif char == "%":
            digits = name[pos + 1 : pos + 3]
            if not _HEX.fullmatch(digits):
                raise SymbolError(f"bad escape '%' at position {pos} in Qlib name {name!r}")
            raw.append(int(digits, 16))
            pos += 3
        elif char.upper() in _KEEP:
            raw.extend(char.upper().encode())
            pos += 1
        else:
            raise SymbolError(f"unexpected character {char!r} at position {pos} in Qlib name {name!r}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SymbolError(f"Qlib name {name!r} does not decode to UTF-8") from exc


def feature_dir_name(symbol: str) -> str:
    """The folder Qlib reads for an instrument name (``qlib.utils.code_to_fname`` then lower-case)."""
    if symbol.upper() in _DEVICE_NAMES:
        symbol = _QLIB_PREFIX + symbol
    return symbol.lower()
