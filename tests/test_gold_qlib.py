"""The test of truth: Qlib itself reads the exported provider dir and returns the silver values."""

from __future__ import annotations

import datetime as dt
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
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
