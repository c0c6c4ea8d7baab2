"""Gold export without Qlib: file layout, NaN padding, incremental == full byte for byte, bad input."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from loaders import calendar as nyse
from loaders.gold import writer
from loaders.gold.exporter import DAILY_FIELDS, export_duckdb_file, parse_features
from loaders.gold.symbols import feature_dir_name, to_qlib_symbol
from loaders.gold.synthetic import daily_table, minute_table, write_silver
from loaders.gold.writer import MANIFEST_NAME, ExportError

START, END = dt.date(2024, 6, 3), dt.date(2024, 9, 30)
MINUTE_DAYS = [dt.date(2024, 7, 2), dt.date(2024, 7, 3), dt.date(2024, 7, 5)]  # 07-03 is a half day


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file's bytes; the manifest without its per-ticker tokens, which change whenever a ticker's
    files are written whole (so they differ between an incremental and a full export by design)."""
    out = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    if MANIFEST_NAME in out:
        manifest = json.loads(out[MANIFEST_NAME])
        for freq in manifest.values():
            for entry in freq.get("symbols", {}).values() if isinstance(freq, dict) else []:
                assert len(entry.pop("token")) == 12
        out[MANIFEST_NAME] = json.dumps(manifest, sort_keys=True).encode()
    return out


def read_bin(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<f4")


def assert_same_tree(a: Path, b: Path) -> None:
    left, right = tree_bytes(a), tree_bytes(b)
    assert sorted(left) == sorted(right)
    different = [name for name in left if left[name] != right[name]]
    assert not different, f"files differ: {different[:5]}"


@pytest.fixture()
def silver() -> tuple[pa.Table, pa.Table]:
    daily = daily_table(12, START, END, seed=3)
    minute = minute_table(daily, MINUTE_DAYS, ["ABCpA", "CON", "BRK.B", "TA"], seed=5)
    return daily, minute


def rows_until(table: pa.Table, last: dt.date) -> pa.Table:
    return table.filter(pa.compute.less_equal(table.column("session_date"), pa.scalar(last, pa.date32())))


def test_full_export_layout_follows_the_qlib_contract(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, minute = silver
    # no ticker trades on 2024-07-05: the calendar still has it (it comes from NYSE, not from the data)
    gap = dt.date(2024, 7, 8)
    daily = daily.filter(pa.compute.not_equal(daily.column("session_date"), pa.scalar(gap, pa.date32())))
    write_silver(tmp_path / "q.duckdb", daily, minute)
    root = tmp_path / "qlib"
    export_duckdb_file(tmp_path / "q.duckdb", root)

    days = (root / "calendars" / "day.txt").read_text().splitlines()
    first = min(daily.column("session_date").to_pylist())
    last = max(daily.column("session_date").to_pylist())
    assert days == [d.isoformat() for d in nyse.sessions(first, last)]
    assert gap.isoformat() in days and "2024-07-04" not in days

    rows = daily.to_pylist()
    by_ticker: dict[str, list[dict]] = {}
    for row in rows:
        by_ticker.setdefault(row["ticker"], []).append(row)
    inst = [line.split("\t") for line in (root / "instruments" / "all.txt").read_text().splitlines()]
    assert [i[0] for i in inst] == [to_qlib_symbol(t) for t in sorted(by_ticker)]
    for (symbol, start, end), ticker in zip(inst, sorted(by_ticker), strict=True):
        assert (start, end) == (
            by_ticker[ticker][0]["session_date"].isoformat(),
            by_ticker[ticker][-1]["session_date"].isoformat(),
        )
        folder = root / "features" / feature_dir_name(symbol)
        expected_files = {f"{f}.day.bin" for f in (*DAILY_FIELDS, "return_1d", "rsi_14")}
        assert expected_files <= {p.name for p in folder.iterdir()}
        close = read_bin(folder / "close.day.bin")
        assert close[0] == days.index(start)
        assert len(close) == days.index(end) - days.index(start) + 2
        values = dict(
            zip((r["session_date"].isoformat() for r in by_ticker[ticker]), by_ticker[ticker], strict=True)
        )
        for k, day in enumerate(days[days.index(start) : days.index(end) + 1], start=1):
            if day in values:
                assert close[k] == np.float32(values[day]["adj_close"])
            else:
                assert np.isnan(close[k]), (ticker, day)
    # CON is a Windows device name: Qlib reads it from _qlib_con, as its code_to_fname says
    assert (root / "features" / "_qlib_con" / "close.day.bin").exists()
    assert (root / "features" / "abc_pa").is_dir() and (root / "features" / "abcpa").is_dir()

    minutes = (root / "calendars" / "1min.txt").read_text().splitlines()
    assert len(minutes) == 390 + 210 + 390
    assert minutes[0] == "2024-07-02 09:30:00" and minutes[389] == "2024-07-02 15:59:00"
    assert minutes[390] == "2024-07-03 09:30:00" and minutes[599] == "2024-07-03 12:59:00"
    m_inst = (root / "instruments" / "all_1min.txt").read_text().splitlines()
    assert m_inst and all(line.count("\t") == 2 for line in m_inst)


def test_minute_bins_are_adjusted_with_the_daily_factor(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, minute = silver
    write_silver(tmp_path / "q.duckdb", daily, minute)
    root = tmp_path / "qlib"
    stats = export_duckdb_file(tmp_path / "q.duckdb", root)
    assert any("outside regular trading hours" in n for n in stats[1].notes)
    calendar = (root / "calendars" / "1min.txt").read_text().splitlines()
    con = duckdb.connect(str(tmp_path / "q.duckdb"), read_only=True)
    rows = con.execute(
        """
        select m.ticker, strftime(timezone('America/New_York', m.bar_start_at), '%Y-%m-%d %H:%M:%S') as label,
               m.close * d.adj_factor, m.volume / d.adj_factor, d.adj_factor
        from main_staging.stg_polygon__stocks_minute m
        join fct_stock_features_daily d using (ticker, session_date)
        """
    ).fetchall()
    con.close()
    checked = 0
    for ticker, label, close, volume, factor in rows:
        if label not in calendar:
            continue  # pre-market bar
        folder = root / "features" / feature_dir_name(to_qlib_symbol(ticker))
        arr_close = read_bin(folder / "close.1min.bin")
        k = calendar.index(label) - int(arr_close[0]) + 1
        assert arr_close[k] == np.float32(close)
        assert read_bin(folder / "volume.1min.bin")[k] == np.float32(volume)
        assert read_bin(folder / "factor.1min.bin")[k] == np.float32(factor)
        checked += 1
    assert checked > 1000


def test_incremental_appends_and_rewrites_match_a_full_export(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, minute = silver
    db = tmp_path / "q.duckdb"
    inc, full = tmp_path / "inc" / "qlib", tmp_path / "full" / "qlib"

    # day 1: data up to 2024-08-30, minute bars of the first two sessions; KIMpL misses a day in August
    abc_days = [r["session_date"] for r in daily.to_pylist() if r["ticker"] == "KIMpL"]
    missing = [d for d in abc_days if dt.date(2024, 8, 10) < d < dt.date(2024, 8, 25)][0]
    hole = pa.compute.and_(
        pa.compute.equal(daily.column("ticker"), "KIMpL"),
        pa.compute.equal(daily.column("session_date"), pa.scalar(missing, pa.date32())),
    )
    assert hole.to_pylist().count(True) == 1
    first = rows_until(daily.filter(pa.compute.invert(hole)), dt.date(2024, 8, 30))
    write_silver(
        db,
        first,
        minute.filter(pa.compute.less(minute.column("session_date"), pa.scalar(MINUTE_DAYS[2], pa.date32()))),
    )
    export_duckdb_file(db, inc)

    # day 2: four more sessions (some tickers skip some), the minute session after a holiday
    write_silver(db, rows_until(daily.filter(pa.compute.invert(hole)), dt.date(2024, 9, 5)), minute)
    stats = export_duckdb_file(db, inc)
    assert stats[0].mode == "incremental" and stats[0].appended > 0 and stats[0].rewritten == 0
    assert stats[1].mode == "incremental" and stats[1].appended > 0
    export_duckdb_file(db, full, full=True)
    assert_same_tree(inc, full)

    # day 3: a backfilled day in the middle of KIMpL, a split that rescales TA's history, CON delisted
    updated = rows_until(daily, dt.date(2024, 9, 30))
    ticker = updated.column("ticker")
    factor = pa.compute.if_else(
        pa.compute.equal(ticker, "TA"),
        pa.compute.multiply(updated.column("adj_factor"), 0.25),
        updated.column("adj_factor"),
    )
    updated = updated.set_column(updated.schema.get_field_index("adj_factor"), "adj_factor", factor)
    updated = updated.filter(pa.compute.not_equal(ticker, "CON"))
    write_silver(db, updated, minute)
    stats = export_duckdb_file(db, inc)
    assert stats[0].mode == "incremental"
    assert stats[0].rewritten >= 2 and stats[0].removed == 1 and stats[0].appended > 0
    assert not (inc / "features" / "_qlib_con").exists()
    export_duckdb_file(db, full, full=True)
    assert_same_tree(inc, full)

    # an unchanged re-run writes nothing and changes no byte
    before = tree_bytes(inc)
    stats = export_duckdb_file(db, inc)
    assert stats[0].files == 0 and stats[1].files == 0
    assert tree_bytes(inc) == before


def test_incremental_repairs_a_file_left_short_by_an_interrupted_export(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, _ = silver
    db = tmp_path / "q.duckdb"
    write_silver(db, rows_until(daily, dt.date(2024, 8, 30)), None)
    root = tmp_path / "qlib"
    export_duckdb_file(db, root, minute=False)
    victim = root / "features" / "brk.b" / "close.day.bin"
    victim.write_bytes(victim.read_bytes()[:-8])
    write_silver(db, daily, None)
    stats = export_duckdb_file(db, root, minute=False)
    assert stats[0].rewritten == 1
    export_duckdb_file(db, tmp_path / "full", full=True, minute=False)
    assert_same_tree(root, tmp_path / "full")


def test_changing_the_feature_list_rewrites_the_day_provider(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, _ = silver
    write_silver(tmp_path / "q.duckdb", daily, None)
    root = tmp_path / "qlib"
    export_duckdb_file(tmp_path / "q.duckdb", root, minute=False)
    stats = export_duckdb_file(tmp_path / "q.duckdb", root, features=("rsi_14",), minute=False)
    assert stats[0].mode == "full"
    assert not list((root / "features").glob("*/return_1d.day.bin"))
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    assert manifest["day"]["fields"][-1] == "rsi_14"


def test_duplicate_rows_are_rejected_with_ticker_and_date(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, _ = silver
    write_silver(tmp_path / "q.duckdb", pa.concat_tables([daily, daily.slice(5, 1)]), None)
    with pytest.raises(ExportError, match=r"ticker 'A' has more than one row at 2024-06-10"):
        export_duckdb_file(tmp_path / "q.duckdb", tmp_path / "qlib", minute=False)


def test_a_row_on_a_non_session_day_is_rejected(tmp_path: Path, silver: tuple[pa.Table, pa.Table]) -> None:
    daily, _ = silver
    bad = daily.slice(0, 1)
    bad = bad.set_column(1, "session_date", pa.array([dt.date(2024, 7, 4)], pa.date32()))
    write_silver(tmp_path / "q.duckdb", pa.concat_tables([daily, bad]), None)
    with pytest.raises(
        ExportError, match=r"ticker 'A' has a row at 2024-07-04, which is not in the NYSE day calendar"
    ):
        export_duckdb_file(tmp_path / "q.duckdb", tmp_path / "qlib", minute=False)


def test_missing_columns_and_bad_feature_names_are_named(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, _ = silver
    write_silver(tmp_path / "q.duckdb", daily.drop_columns(["adj_vwap"]), None)
    with pytest.raises(ExportError, match=r"fct_stock_features_daily .*missing column\(s\) adj_vwap"):
        export_duckdb_file(tmp_path / "q.duckdb", tmp_path / "qlib", minute=False)
    write_silver(tmp_path / "q.duckdb", daily, None)
    with pytest.raises(ExportError, match=r"missing column\(s\) no_such_feature \(has: "):
        export_duckdb_file(
            tmp_path / "q.duckdb", tmp_path / "qlib", features=("no_such_feature",), minute=False
        )
    with pytest.raises(ExportError, match="lower-case"):
        parse_features("RSI_14")
    assert parse_features(" return_1d, rsi_14 ,") == ("return_1d", "rsi_14")
    assert parse_features("['return_1d', 'atr_14']") == ("return_1d", "atr_14")


def test_export_command_reports_errors_and_writes_the_data_dir(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.gold.commands import export_command

    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QM_QLIB_FEATURES", "rsi_14")
    assert export_command(full=False, minute=True) == 1  # no silver database yet
    daily, minute = silver
    write_silver(tmp_path / "quantmini.duckdb", daily, minute)
    assert export_command(full=False, minute=True) == 0
    root = tmp_path / "gold" / "qlib"
    assert (root / "calendars" / "day.txt").exists() and (root / "calendars" / "1min.txt").exists()
    assert (root / "features" / "a" / "rsi_14.day.bin").exists()
    assert not (root / "features" / "a" / "return_1d.day.bin").exists()


def test_row_order_in_silver_does_not_change_the_output(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, minute = silver
    write_silver(tmp_path / "sorted.duckdb", daily, minute)
    export_duckdb_file(tmp_path / "sorted.duckdb", tmp_path / "a" / "qlib")
    rng = np.random.default_rng(0)
    write_silver(
        tmp_path / "shuffled.duckdb",
        daily.take(pa.array(rng.permutation(daily.num_rows))),
        minute.take(pa.array(rng.permutation(minute.num_rows))),
    )
    export_duckdb_file(tmp_path / "shuffled.duckdb", tmp_path / "b" / "qlib")
    assert_same_tree(tmp_path / "a" / "qlib", tmp_path / "b" / "qlib")


def test_backfill_before_the_first_session_rewrites_everything(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, _ = silver
    db = tmp_path / "q.duckdb"
    late = daily.filter(
        pa.compute.greater_equal(daily.column("session_date"), pa.scalar(dt.date(2024, 8, 1), pa.date32()))
    )
    write_silver(db, late, None)
    export_duckdb_file(db, tmp_path / "inc", minute=False)
    write_silver(db, daily, None)
    stats = export_duckdb_file(db, tmp_path / "inc", minute=False)
    assert stats[0].mode == "full" and "calendar start moved" in stats[0].notes[0]
    export_duckdb_file(db, tmp_path / "full", full=True, minute=False)
    assert_same_tree(tmp_path / "inc", tmp_path / "full")


def test_incremental_export_fetches_only_new_rows_and_tickers_whose_history_changed(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Change detection runs in the database: after a new session, only that session's rows are fetched;
    a ticker whose old session changed (a re-stated close) is fetched and written whole; the result is
    the bytes of a full export, and the manifest records each ticker's file length and row fingerprint."""
    from loaders.gold import exporter

    daily, _ = silver
    dates = daily.column("session_date")
    last_day = pa.compute.max(dates).as_py()
    db = tmp_path / "q.duckdb"
    write_silver(db, daily.filter(pa.compute.less(dates, pa.scalar(last_day, pa.date32()))), None)
    export_duckdb_file(db, tmp_path / "inc", minute=False)

    fetched: list[int] = []
    original = exporter.daily_fetcher

    def counting(*args: object) -> object:
        fetch = original(*args)  # type: ignore[arg-type]

        def wrapped(wanted: list[tuple[str, int | None]]) -> object:
            for batch in fetch(wanted):
                fetched.append(batch.num_rows)
                yield batch

        return wrapped

    monkeypatch.setattr(exporter, "daily_fetcher", counting)
    new_rows = int(pa.compute.sum(pa.compute.equal(dates, pa.scalar(last_day, pa.date32()))).as_py())
    write_silver(db, daily, None)
    stats = export_duckdb_file(db, tmp_path / "inc", minute=False)
    assert stats[0].mode == "incremental" and stats[0].appended == new_rows and stats[0].rewritten == 0
    assert sum(fetched) == new_rows

    # TD's close on its fifth session is re-stated: TD alone is fetched whole and rewritten
    td = pa.compute.equal(daily.column("ticker"), "TD")
    row = int(pa.compute.indices_nonzero(td)[4].as_py())
    close = daily.column("adj_close").to_pylist()
    close[row] = close[row] * 1.5
    restated = daily.set_column(daily.schema.get_field_index("adj_close"), "adj_close", pa.array(close))
    write_silver(db, restated, None)
    fetched.clear()
    stats = export_duckdb_file(db, tmp_path / "inc", minute=False)
    assert (stats[0].rewritten, stats[0].appended, stats[0].unchanged) == (1, 0, 11)
    assert sum(fetched) == int(pa.compute.sum(td).as_py())
    export_duckdb_file(db, tmp_path / "full", full=True, minute=False)
    assert_same_tree(tmp_path / "inc", tmp_path / "full")

    manifest = json.loads((tmp_path / "inc" / MANIFEST_NAME).read_text())["day"]
    for entry in manifest["symbols"].values():
        folder = tmp_path / "inc" / "features" / feature_dir_name(entry["symbol"])
        assert all(
            (folder / f"{n}.day.bin").stat().st_size == 4 * entry["length"] for n in manifest["fields"]
        )
        assert entry["rows"].isdigit()


def test_small_layout_batches_and_shuffled_rows_give_the_same_bytes(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    daily, _ = silver
    write_silver(tmp_path / "q.duckdb", daily, None)
    export_duckdb_file(tmp_path / "q.duckdb", tmp_path / "one" / "qlib", minute=False)
    # a batch smaller than one ticker's files: every ticker is laid out on its own
    monkeypatch.setattr(writer, "BATCH_FLOATS", 16)
    rng = np.random.default_rng(1)
    write_silver(tmp_path / "q.duckdb", daily.take(pa.array(rng.permutation(daily.num_rows))), None)
    export_duckdb_file(tmp_path / "q.duckdb", tmp_path / "many" / "qlib", minute=False)
    assert_same_tree(tmp_path / "one" / "qlib", tmp_path / "many" / "qlib")
    # a duplicate is still found when it sits in a later batch, in shuffled rows
    dup = daily.filter(pa.compute.equal(daily.column("ticker"), "TD")).slice(7, 1)
    write_silver(
        tmp_path / "q.duckdb",
        pa.concat_tables([dup, daily]).take(pa.array(rng.permutation(daily.num_rows + 1))),
        None,
    )
    with pytest.raises(
        ExportError, match=r"fct_stock_features_daily \(.*\): ticker 'TD' has more than one row at 20"
    ):
        export_duckdb_file(tmp_path / "q.duckdb", tmp_path / "dup" / "qlib", minute=False)


def _rename_ticker(table: pa.Table, old: str, new: str) -> pa.Table:
    tickers = [new if t == old else t for t in table.column("ticker").to_pylist()]
    return table.set_column(table.schema.get_field_index("ticker"), "ticker", pa.array(tickers, pa.string()))


def test_hostile_tickers_export_to_distinct_safe_folders(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    daily, _ = silver
    names = sorted(set(daily.column("ticker").to_pylist()))
    hostile = ["../../x", "A/B", "CON", "con", "NUL", "株式", "X" * 300, "ABCpA", "ABCPA"]
    renames = zip(
        [n for n in names if n not in hostile], [h for h in hostile if h not in names], strict=False
    )
    for old, new in renames:
        daily = _rename_ticker(daily, old, new)
    assert set(hostile) <= set(daily.column("ticker").to_pylist())
    write_silver(tmp_path / "q.duckdb", daily, None)
    root = tmp_path / "gold" / "qlib"
    stats = export_duckdb_file(tmp_path / "q.duckdb", root, minute=False)
    assert stats[0].symbols == len(set(daily.column("ticker").to_pylist()))
    folders = [p for p in (root / "features").iterdir()]
    assert len(folders) == stats[0].symbols
    assert all(p.parent == root / "features" for p in root.rglob("*.day.bin") for p in [p.parent])
    assert not (tmp_path / "x").exists() and not (tmp_path / "gold" / "x").exists()
    listed = [line.split("\t")[0] for line in (root / "instruments" / "all.txt").read_text().splitlines()]
    assert {feature_dir_name(s) for s in listed} == {p.name for p in folders}


def test_a_failed_export_leaves_the_last_good_provider_dir(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    daily, _ = silver
    db, root = tmp_path / "q.duckdb", tmp_path / "qlib"
    write_silver(db, daily, None)
    export_duckdb_file(db, root, minute=False)
    good = tree_bytes(root)

    calls = {"n": 0}
    original = writer._FolderWriter.write

    def fail_half_way(self: object, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] > 5:
            raise OSError(28, "No space left on device")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(writer._FolderWriter, "write", fail_half_way)
    with pytest.raises(OSError):
        export_duckdb_file(db, root, minute=False, full=True)
    assert tree_bytes(root) == good  # the full rebuild failed beside it: the provider dir is untouched
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".qlib")] in ([], [".qlib.lock"])
    export_duckdb_file(db, root, minute=False, full=True)
    assert tree_bytes(root) == good


def test_a_first_export_that_fails_leaves_no_partial_provider_dir(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    daily, _ = silver
    db, root = tmp_path / "q.duckdb", tmp_path / "qlib"
    write_silver(db, daily, None)
    monkeypatch.setattr(
        writer._FolderWriter,
        "write",
        lambda *a, **k: (_ for _ in ()).throw(OSError(36, "File name too long")),
    )
    with pytest.raises(OSError):
        export_duckdb_file(db, root, minute=False)
    assert not root.exists() or not any(root.iterdir())
    monkeypatch.undo()
    export_duckdb_file(db, root, minute=False)
    assert (root / "calendars" / "day.txt").exists() and (root / "instruments" / "all.txt").exists()


# ------------------------------------------------------------------ change detection by built_at


def _stamped_run(db: Path, rows: pa.Table, built_at: str, full_refresh: bool = False) -> None:
    """Write the daily mart as an incremental dbt run does: rows that are new or differ from the stored
    ones are deleted and inserted again with the run's `built_at` (appended to the table), rows gone
    from the input are deleted, the others keep theirs; `full_refresh` rebuilds every row."""
    con = duckdb.connect(str(db))
    try:
        con.register("incoming", rows)
        stamp = f"timestamp with time zone '{built_at}'"
        exists = con.execute(
            "select count(*) from information_schema.tables where table_name = 'fct_stock_features_daily'"
        ).fetchone()[0]
        if full_refresh or not exists:
            con.execute(
                "create or replace table main.fct_stock_features_daily as "
                f"select *, {stamp} as built_at from incoming"
            )
            return
        con.execute(
            "create temp table changed as select * from incoming "
            "except select * exclude (built_at) from main.fct_stock_features_daily"
        )
        con.execute(
            "delete from main.fct_stock_features_daily as m where exists (select 1 from changed as c "
            "where c.ticker = m.ticker and c.session_date = m.session_date) or not exists (select 1 from "
            "incoming as i where i.ticker = m.ticker and i.session_date = m.session_date)"
        )
        con.execute(f"insert into main.fct_stock_features_daily select *, {stamp} from changed")
    finally:
        con.close()


def _profiled_export(
    db: Path, root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Any, list]:
    """Export with DuckDB's profiler on: returns the stats and (query, rows scanned) of every query the
    planning ran through `_fetch` (the change detection; the row fetch streams through its own call)."""
    from loaders.gold import exporter

    profile = tmp_path / "profile.json"
    scans: list[tuple[str, int]] = []
    original = exporter._fetch

    def profiled(con: duckdb.DuckDBPyConnection, sql: str, label: str) -> pa.Table:
        table = original(con, sql, label)
        scans.append((sql, int(json.loads(profile.read_text())["cumulative_rows_scanned"])))
        return table

    monkeypatch.setattr(exporter, "_fetch", profiled)
    con = duckdb.connect(str(db), read_only=True)
    try:
        con.execute("set enable_profiling = 'json'")
        con.execute(f"set profiling_output = '{profile}'")
        con.execute('set custom_profiling_settings = \'{"CUMULATIVE_ROWS_SCANNED": "true"}\'')
        stats = exporter.export_qlib(
            con, root, daily_relation='"main"."fct_stock_features_daily"', minute_relation=None, minute=False
        )
    finally:
        con.close()
    monkeypatch.setattr(exporter, "_fetch", original)
    return stats, scans


def _before(table: pa.Table, day: dt.date) -> pa.Table:
    return table.filter(pa.compute.less(table.column("session_date"), pa.scalar(day, pa.date32())))


def test_built_at_detection_reads_only_the_rows_written_since_the_last_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mart with `built_at` (several row groups): after a run that wrote one new session, the change
    detection scans only about that session's rows (DuckDB's profile), every ticker with the session is
    appended, and the provider dir equals a full export byte for byte; a re-run scans next to nothing."""
    daily = daily_table(400, dt.date(2022, 1, 3), dt.date(2024, 12, 31), seed=9)
    last_day = pa.compute.max(daily.column("session_date")).as_py()
    db, inc = tmp_path / "q.duckdb", tmp_path / "inc"
    _stamped_run(db, _before(daily, last_day), "2025-01-01 06:00:00+00")
    stats, _ = _profiled_export(db, inc, monkeypatch, tmp_path)
    assert stats[0].mode == "full"
    assert json.loads((inc / MANIFEST_NAME).read_text())["day"]["built_at"].startswith("'2025-01-01 06:00:00")

    _stamped_run(db, daily, "2025-01-02 06:00:00+00")
    new_rows = daily.num_rows - _before(daily, last_day).num_rows
    stats, scans = _profiled_export(db, inc, monkeypatch, tmp_path)
    assert stats[0].mode == "incremental" and stats[0].rewritten == 0
    assert stats[0].appended == new_rows and stats[0].appended + stats[0].unchanged == 400
    assert any(f"{new_rows} row(s) of {new_rows} ticker(s)" in n for n in stats[0].notes), stats[0].notes
    assert daily.num_rows > 250_000 and scans, "several row groups, and a detection query ran"
    # one vector of 2,048 rows around the new ones at most, out of the whole mart
    assert all(new_rows <= scanned <= new_rows + 4096 for _, scanned in scans), scans
    # the last query, the fetch of the appended rows, reads about as few (the mart is laid out by
    # ticker, so the session filter alone would scan every row group)
    assert json.loads((tmp_path / "profile.json").read_text())["cumulative_rows_scanned"] <= new_rows + 4096
    export_duckdb_file(db, tmp_path / "full", full=True, minute=False)
    assert_same_tree(inc, tmp_path / "full")

    stats, scans = _profiled_export(db, inc, monkeypatch, tmp_path)
    assert stats[0].files == 0 and stats[0].unchanged == 400
    assert all(scanned <= 4096 for _, scanned in scans), scans


def test_built_at_detection_rewrites_restated_and_deleted_tickers_whole(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    """One run adds a session, re-states TD's close of its fifth session and deletes TB's tenth
    session (a ticker-session gone from a re-loaded day: no row is left to carry a `built_at`), and
    CON is delisted whole: TD and TB are rewritten whole, CON removed, the others appended; a full
    refresh (every row re-stamped) rewrites everything; each time the bytes equal a full export."""
    daily, _ = silver
    last_day = pa.compute.max(daily.column("session_date")).as_py()
    db, inc, full = tmp_path / "q.duckdb", tmp_path / "inc", tmp_path / "full"
    _stamped_run(db, _before(daily, last_day), "2025-01-01 06:00:00+00")
    export_duckdb_file(db, inc, minute=False)

    ticker = daily.column("ticker")
    td = pa.compute.indices_nonzero(pa.compute.equal(ticker, "TD")).to_pylist()
    tb = pa.compute.indices_nonzero(pa.compute.equal(ticker, "TB")).to_pylist()
    close = daily.column("adj_close").to_pylist()
    close[td[4]] *= 1.5
    keep = np.ones(daily.num_rows, dtype=bool)
    keep[tb[9]] = False
    keep &= np.array(ticker.to_pylist()) != "CON"
    changed = daily.set_column(daily.schema.get_field_index("adj_close"), "adj_close", pa.array(close))
    changed = changed.filter(pa.array(keep))
    _stamped_run(db, changed, "2025-01-02 06:00:00+00")
    stats = export_duckdb_file(db, inc, minute=False)
    with_new_day = {r["ticker"] for r in daily.to_pylist() if r["session_date"] == last_day} - {
        "TD",
        "TB",
        "CON",
    }
    assert stats[0].mode == "incremental"
    assert (stats[0].rewritten, stats[0].removed, stats[0].appended) == (2, 1, len(with_new_day))
    assert any("unaccounted for" in n for n in stats[0].notes), stats[0].notes
    export_duckdb_file(db, full, full=True, minute=False)
    assert_same_tree(inc, full)

    # a run that changes nothing, then a full refresh: every row gets the new run's time
    _stamped_run(db, changed, "2025-01-03 06:00:00+00")
    assert export_duckdb_file(db, inc, minute=False)[0].files == 0
    _stamped_run(db, changed, "2025-01-04 06:00:00+00", full_refresh=True)
    stats = export_duckdb_file(db, inc, minute=False)
    assert stats[0].mode == "incremental" and stats[0].rewritten == 11 and stats[0].appended == 0
    export_duckdb_file(db, full, full=True, minute=False)
    assert_same_tree(inc, full)


def test_an_export_from_before_built_at_compares_hashes_once_then_reads_built_at(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    """The upgrade: a version 4 manifest (row fingerprints, no built_at) over a mart without the
    column; dbt adds it (NULL on the old rows) and stamps what the next run writes. The first export
    compares fingerprints once and records the newest built_at; the next reads only newer rows."""
    daily, _ = silver
    days = sorted(set(daily.column("session_date").to_pylist()))
    db, inc, full = tmp_path / "q.duckdb", tmp_path / "inc", tmp_path / "full"
    write_silver(db, _before(daily, days[-2]))
    export_duckdb_file(db, inc, minute=False)
    manifest = json.loads((inc / MANIFEST_NAME).read_text())
    assert "built_at" not in manifest["day"] and all(e["rows"] for e in manifest["day"]["symbols"].values())
    manifest["version"] = 4
    for entry in manifest["day"]["symbols"].values():
        del entry["count"]
    (inc / MANIFEST_NAME).write_text(json.dumps(manifest))

    with duckdb.connect(str(db)) as con:  # what `on_schema_change: append_new_columns` does
        con.execute("alter table main.fct_stock_features_daily add column built_at timestamp with time zone")
    _stamped_run(db, _before(daily, days[-1]), "2025-01-02 06:00:00+00")
    stats = export_duckdb_file(db, inc, minute=False)
    assert stats[0].mode == "incremental" and stats[0].rewritten == 0 and stats[0].appended > 0
    assert any("once" in n for n in stats[0].notes), stats[0].notes
    day = json.loads((inc / MANIFEST_NAME).read_text())["day"]
    assert day["built_at"].startswith("'2025-01-02 06:00:00") and "rows" not in next(
        iter(day["symbols"].values())
    )

    _stamped_run(db, daily, "2025-01-03 06:00:00+00")
    stats = export_duckdb_file(db, inc, minute=False)
    assert stats[0].mode == "incremental" and stats[0].rewritten == 0 and stats[0].appended > 0
    assert any("written since the last export" in n for n in stats[0].notes), stats[0].notes
    export_duckdb_file(db, full, full=True, minute=False)
    assert_same_tree(inc, full)


def test_built_at_detection_compares_the_short_data_mart_by_hash(
    tmp_path: Path, silver: tuple[pa.Table, pa.Table]
) -> None:
    """Short data comes from a mart rebuilt by every dbt run (no useful built_at): a short-data value
    re-stated for an old session rewrites that ticker, new short rows of the new session append."""
    daily, _ = silver
    last_day = pa.compute.max(daily.column("session_date")).as_py()
    db, inc, full = tmp_path / "q.duckdb", tmp_path / "inc", tmp_path / "full"

    def short_mart(rows: pa.Table, restate: str | None = None) -> None:
        with duckdb.connect(str(db)) as con:
            con.register("bars", rows)
            con.execute(
                "create or replace table main.fct_short_data_daily as select ticker, session_date, "
                "cast(hash(ticker, session_date) % 1000 as double) + case when ticker = ? then 0.5 else 0 end "
                "as short_interest, 1.5 as days_to_cover, 0.25 as short_volume_ratio from bars "
                "where ticker in ('TA', 'TD', 'AUX')",
                [restate],
            )

    def export(root: Path, **kwargs: Any) -> Any:
        from loaders.gold.exporter import export_qlib

        with duckdb.connect(str(db), read_only=True) as con:
            return export_qlib(
                con,
                root,
                daily_relation='"main"."fct_stock_features_daily"',
                minute_relation=None,
                minute=False,
                short_relation='"main"."fct_short_data_daily"',
                **kwargs,
            )

    _stamped_run(db, _before(daily, last_day), "2025-01-01 06:00:00+00")
    short_mart(_before(daily, last_day))
    export(inc)
    _stamped_run(db, daily, "2025-01-02 06:00:00+00")
    short_mart(daily, restate="TD")
    stats = export(inc)
    assert stats[0].mode == "incremental" and stats[0].rewritten == 1 and stats[0].appended > 0
    export(full, full=True)
    assert_same_tree(inc, full)
    assert export(inc)[0].files == 0
