"""The test of truth: Qlib itself reads the exported provider dir and returns the silver values."""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest

from loaders import calendar as nyse
from loaders.gold.exporter import export_duckdb_file
from loaders.gold.symbols import from_qlib_symbol, to_qlib_symbol
from loaders.gold.synthetic import daily_table, minute_table, write_silver

# one worker builds the provider dir and initialises Qlib once for the whole module
pytestmark = [pytest.mark.qlib, pytest.mark.xdist_group("gold_qlib")]

START, END = dt.date(2024, 1, 2), dt.date(2024, 6, 28)
MINUTE_DAYS = [dt.date(2024, 6, 26), dt.date(2024, 6, 27), dt.date(2024, 6, 28)]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, pd.DataFrame]]:
    import qlib

    base = tmp_path_factory.mktemp("gold_qlib")
    daily = daily_table(8, START, END, seed=21)
    minute = minute_table(daily, MINUTE_DAYS, ["ABCpA", "CON", "BRK.B"], seed=4)
    write_silver(base / "q.duckdb", daily, minute)
    root = base / "qlib"
    export_duckdb_file(base / "q.duckdb", root)
    # offline: no redis, no disk caches, no worker processes, nothing under ~/.qlib
    qlib.init(
        provider_uri=str(root),
        region="us",
        expression_cache=None,
        dataset_cache=None,
        kernels=1,
        exp_manager={
            "class": "MLflowExpManager",
            "module_path": "qlib.workflow.expm",
            "kwargs": {"uri": (base / "mlruns").as_uri(), "default_exp_name": "gold_test"},
        },
    )
    yield root, daily.to_pandas()


def test_calendar_and_instruments_round_trip(provider: tuple[Path, pd.DataFrame]) -> None:
    from qlib.data import D

    _, silver = provider
    days = [ts.date() for ts in D.calendar(freq="day")]
    first, last = silver["session_date"].min(), silver["session_date"].max()
    assert days == nyse.sessions(first, last)
    spans = D.list_instruments(D.instruments("all"))
    expected = silver.groupby("ticker")["session_date"].agg(["min", "max"])
    assert sorted(spans) == sorted(to_qlib_symbol(t) for t in expected.index)
    for symbol, ranges in spans.items():
        ticker = from_qlib_symbol(symbol)
        assert [(a.date(), b.date()) for a, b in ranges] == [
            (expected.loc[ticker, "min"], expected.loc[ticker, "max"])
        ]
    assert {"ABC_pA", "ABCPA", "BRK.B", "CON"} <= set(D.list_instruments(D.instruments("all"), as_list=True))


def test_features_equal_the_silver_values(provider: tuple[Path, pd.DataFrame]) -> None:
    from qlib.data import D

    _, silver = provider
    fields = [
        "$close",
        "$factor",
        "$vwap",
        "$change",
        "Ref($close, 1)",
        "$volume",
        "$close / $factor",
        "$rsi_14",
    ]
    got = D.features(D.instruments("all"), fields, start_time=str(START), end_time=str(END))
    calendar = nyse.sessions(START, END)
    checked = 0
    for ticker, rows in silver.groupby("ticker"):
        frame = got.loc[to_qlib_symbol(ticker)]
        frame.index = [ts.date() for ts in frame.index]
        rows = rows.set_index("session_date")
        span = [d for d in calendar if rows.index.min() <= d <= rows.index.max()]
        assert list(frame.index) == span
        present = rows.reindex(span)
        previous = rows["adj_close"].reindex([nyse.previous_session(d) for d in span]).to_numpy()
        pairs = {
            "$close": present["adj_close"],
            "$factor": present["adj_factor"],
            "$vwap": present["adj_vwap"],
            "$change": present["change"],
            "$volume": present["adj_volume"],
            "$close / $factor": present["close"],
            "$rsi_14": present["rsi_14"],
        }
        for field, expected in pairs.items():
            np.testing.assert_allclose(
                frame[field].to_numpy(), expected.to_numpy(np.float64), rtol=2e-6, err_msg=f"{ticker} {field}"
            )
        first_prev = np.concatenate(([np.nan], previous[1:]))  # Qlib has nothing before the first row
        np.testing.assert_allclose(frame["Ref($close, 1)"].to_numpy(), first_prev, rtol=2e-6, err_msg=ticker)
        checked += int(present["adj_close"].notna().sum())
    assert checked == len(silver)


def test_minute_features_are_read_on_the_us_minute_grid(provider: tuple[Path, pd.DataFrame]) -> None:
    from qlib.data import D

    cal = D.calendar(freq="1min")
    assert len(cal) == 3 * 390
    assert str(cal[0]) == "2024-06-26 09:30:00" and str(cal[-1]) == "2024-06-28 15:59:00"
    frame = D.features(D.instruments("all_1min"), ["$close", "$factor", "$volume"], freq="1min")
    assert frame.index.get_level_values("datetime").max() == pd.Timestamp("2024-06-28 15:59:00")
    assert frame["$close"].notna().sum() > 1000
    assert frame["$factor"].dropna().gt(0).all()


def test_alpha158_loads_with_every_field_present_and_no_warnings(provider: tuple[Path, pd.DataFrame]) -> None:
    from qlib.contrib.data.handler import Alpha158
    from qlib.data import D

    collector = _Collect()
    qlib_logger = logging.getLogger("qlib")
    qlib_logger.addHandler(collector)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            handler = Alpha158(
                instruments="all",
                start_time="2024-03-01",
                end_time=str(END),
                fit_start_time="2024-03-01",
                fit_end_time="2024-05-31",
            )
            frame = handler.fetch(col_set="feature")
            raw = D.features(
                D.instruments("all"),
                ["$open", "$high", "$low", "$close", "$volume", "$vwap"],
                start_time="2024-03-01",
            )
    finally:
        qlib_logger.removeHandler(collector)
    assert not [r.getMessage() for r in collector.records]
    # pandas 3 deprecates an option Qlib sets; anything else (a missing field, a bad dtype) fails the test
    relevant = [str(w.message) for w in caught if "mode.chained_assignment" not in str(w.message)]
    assert not relevant
    assert frame.shape[1] == 158
    empty = [c for c in frame.columns if frame[c].notna().sum() == 0]
    assert not empty, f"Alpha158 features with no data: {empty}"
    # Qlib reads a missing field file as an empty series without a warning: check every instrument has them
    per_instrument = raw.groupby(level="instrument").count()
    assert (per_instrument > 0).all().all(), per_instrument[(per_instrument == 0).any(axis=1)]


def test_incremental_append_matches_qlib_own_storage_writer(tmp_path: Path) -> None:
    """Appending with Qlib's FileFeatureStorage.write gives the same bytes as our incremental export."""
    import shutil

    from qlib.data.storage.file_storage import FileFeatureStorage
    from qlib.utils import code_to_fname

    from loaders.gold.symbols import feature_dir_name

    daily = daily_table(6, dt.date(2024, 3, 1), dt.date(2024, 4, 30), seed=9)
    cut = dt.date(2024, 4, 15)
    early = daily.filter(pa.compute.less_equal(daily.column("session_date"), pa.scalar(cut, pa.date32())))
    write_silver(tmp_path / "early.duckdb", early)
    write_silver(tmp_path / "all.duckdb", daily)
    ours, qlibs = tmp_path / "ours", tmp_path / "qlibs"
    export_duckdb_file(tmp_path / "early.duckdb", ours, minute=False)
    shutil.copytree(ours, qlibs)
    export_duckdb_file(tmp_path / "all.duckdb", ours, minute=False)

    days = nyse.sessions(dt.date(2024, 3, 1), dt.date(2024, 4, 30))
    shutil.copy(ours / "calendars" / "day.txt", qlibs / "calendars" / "day.txt")
    frame = daily.to_pandas()
    fields = {"close": "adj_close", "factor": "adj_factor", "vwap": "adj_vwap", "rsi_14": "rsi_14"}
    for ticker, rows in frame.groupby("ticker"):
        new = rows[rows["session_date"] > cut].set_index("session_date")
        if new.empty:
            continue
        span = [d for d in days if new.index.min() <= d <= new.index.max()]
        symbol = to_qlib_symbol(ticker)
        for field, column in fields.items():
            # the storage takes the folder name; Qlib's feature provider applies code_to_fname first
            storage = FileFeatureStorage(code_to_fname(symbol), field, "day", provider_uri=str(qlibs))
            storage.write(new[column].reindex(span).to_numpy(np.float64), index=days.index(span[0]))
            folder = feature_dir_name(symbol)
            assert (qlibs / "features" / folder / f"{field}.day.bin").read_bytes() == (
                ours / "features" / folder / f"{field}.day.bin"
            ).read_bytes(), (ticker, field)
