"""Ticker <-> Qlib name mapping: round trip, one folder per ticker, and Qlib's own folder rule."""

from __future__ import annotations

import itertools
import random

import pytest

from loaders.gold.symbols import SymbolError, feature_dir_name, from_qlib_symbol, to_qlib_symbol

AWKWARD = [
    "ABCpA", "ABCPA", "ABCpa", "abcpa", "BRK.B", "BRK.b", "CON", "con", "Con", "COM1", "LPT9", "NUL", "AUX",
    "qLIBcON", "_qlib_CON", "A_B", "A%5FB", "A%B", "..", ".", "O:SPY251219C00650000", "É", "X Y", "a/b", "q", "Q", "NA", "NAN", "NULL", "nan", "None",
]  # fmt: skip


@pytest.mark.parametrize("ticker", AWKWARD)
def test_round_trip_through_symbol_and_folder(ticker: str) -> None:
    symbol = to_qlib_symbol(ticker)
    assert from_qlib_symbol(symbol) == ticker
    assert from_qlib_symbol(feature_dir_name(symbol)) == ticker
    folder = feature_dir_name(symbol)
    assert "/" not in folder and folder not in (".", "..")


def test_case_variants_and_escapes_never_share_a_folder() -> None:
    rng = random.Random(5)
    alphabet = "ABCpqlbiw.CONXYZ_%1"
    tickers = set(AWKWARD)
    for length in range(1, 5):
        tickers.update("".join(p) for p in itertools.product("AaPpQq", repeat=length))
    tickers.update("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(20000))
    folders = {feature_dir_name(to_qlib_symbol(t)) for t in tickers}
    assert len(folders) == len(tickers)


def test_readable_names_for_the_usual_cases() -> None:
    assert to_qlib_symbol("AAPL") == "AAPL"
    assert to_qlib_symbol("BRK.B") == "BRK.B"
    assert to_qlib_symbol("KIMpL") == "KIM_pL"
    assert feature_dir_name("CON") == "_qlib_con"
    assert to_qlib_symbol("NA") == "%4EA" and to_qlib_symbol("NULL") == "%4EULL"


@pytest.mark.parametrize("ticker", AWKWARD)
def test_instrument_names_survive_pandas_csv_parsing(ticker: str) -> None:
    import io

    import pandas as pd

    line = f"{to_qlib_symbol(ticker)}\t2024-01-02\t2024-01-03\n"
    # the same read_csv call Qlib's FileInstrumentStorage makes
    frame = pd.read_csv(
        io.StringIO(line), sep="\t", usecols=[0, 1, 2], names=["i", "s", "e"], dtype={"i": str}
    )
    assert frame["i"].tolist() == [to_qlib_symbol(ticker)]


def test_bad_names_are_rejected_with_the_name() -> None:
    with pytest.raises(SymbolError, match="non-empty"):
        to_qlib_symbol("")
    with pytest.raises(SymbolError, match="'A_1'"):
        from_qlib_symbol("A_1")
    with pytest.raises(SymbolError, match="'A%G1'"):
        from_qlib_symbol("A%G1")


@pytest.mark.qlib
def test_folder_is_what_qlib_reads_for_the_name() -> None:
    from qlib.utils import code_to_fname

    for ticker in AWKWARD:
        symbol = to_qlib_symbol(ticker)
        # FileFeatureStorage lower-cases the instrument after code_to_fname
        assert code_to_fname(symbol).lower() == feature_dir_name(symbol)


HOSTILE = [
    "../../x",
    "A/B",
    "CON",
    "con",
    "NUL",
    "nul",
    "ÀÉÎ",
    "株式",
    "ABCpA",
    "ABCPA",
    "X" * 300,
    "é" * 300,
]


def test_hostile_tickers_get_safe_distinct_folder_names() -> None:
    import os

    folders = [feature_dir_name(to_qlib_symbol(t)) for t in HOSTILE]
    assert len(set(folders)) == len(HOSTILE)
    for folder in folders:
        assert "/" not in folder and "\\" not in folder and folder not in (".", "..")
        assert len(os.fsencode(folder)) <= 255 and folder.isascii()


def test_a_very_long_ticker_is_shortened_with_its_hash_and_stays_distinct() -> None:
    long_a, long_b = "A" * 300, "A" * 299 + "B"  # same first 160 characters
    a, b = to_qlib_symbol(long_a), to_qlib_symbol(long_b)
    assert a != b and len(a) <= 200 and a.startswith("A" * 160 + "~")
    assert feature_dir_name(a) != feature_dir_name(b)
    with pytest.raises(SymbolError, match="shortened name"):
        from_qlib_symbol(a)
    assert to_qlib_symbol("A" * 200) == "A" * 200  # up to the limit names are not touched
