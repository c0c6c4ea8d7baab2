"""validate, status and report on hand-made bronze/silver/gold: clean data passes, each kind of damage is named."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_ops_support import bronze_table, write_bronze

from loaders import calendar
from loaders.config import load_settings
from loaders.gold.symbols import feature_dir_name, to_qlib_symbol
from loaders.ops import report, status, validate

TICKERS = ["AAPL", "BRK.B", "KIMpL", "CON"]
DAYS = calendar.sessions("2025-05-01", "2025-06-30")


@pytest.fixture()
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Consistent bronze, silver mart and gold provider dir for TICKERS over DAYS."""
    import duckdb

    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    write_bronze(tmp_path, "stocks_daily", DAYS, TICKERS)
    con = duckdb.connect(str(tmp_path / "quantmini.duckdb"))
    con.execute("create schema main_marts")
    con.execute(
        "create table main_marts.fct_stock_features_daily "
        "(ticker varchar, session_date date, close double, adj_factor double, adj_close double)"
    )
    rows = [(t, d, 10.5, 1.0, 10.5 + i) for i, t in enumerate(TICKERS) for d in DAYS]
    con.executemany("insert into main_marts.fct_stock_features_daily values (?, ?, ?, ?, ?)", rows)
    con.close()
    gold = tmp_path / "gold" / "qlib"
    (gold / "calendars").mkdir(parents=True)
    (gold / "instruments").mkdir()
    (gold / "calendars" / "day.txt").write_text("".join(f"{d}\n" for d in DAYS))
    (gold / "instruments" / "all.txt").write_text(
        "".join(f"{to_qlib_symbol(t)}\t{DAYS[0]}\t{DAYS[-1]}\n" for t in TICKERS)
    )
    for i, t in enumerate(TICKERS):
        folder = gold / "features" / feature_dir_name(to_qlib_symbol(t))
        folder.mkdir(parents=True)
        for name, value in (("open", 10.5 + i), ("high", 11 + i), ("low", 10 + i), ("close", 10.5 + i)):
            np.array([0] + [value] * len(DAYS), dtype="<f4").tofile(folder / f"{name}.day.bin")
        np.array([0] + [1000.0] * len(DAYS), dtype="<f4").tofile(folder / "volume.day.bin")
        np.array([0] + [1.0] * len(DAYS), dtype="<f4").tofile(folder / "factor.day.bin")
    return tmp_path


def _problems(lake: Path) -> list[validate.Problem]:
    return validate.validate(load_settings()).problems


def test_consistent_layers_validate_clean(lake: Path) -> None:
    assert _problems(lake) == []
    assert validate.validate_command(json_path=lake / "v.json") == 0
    assert json.loads((lake / "v.json").read_text())["ok"] is True


def test_schema_drift_duplicates_and_corrupt_files_are_named(lake: Path) -> None:
    folder = lake / "bronze" / "stocks_daily"
    drifted = bronze_table("stocks_daily", DAYS[3], TICKERS).set_column(
        7, "transactions", pa.array([1.0] * len(TICKERS), pa.float64())
    )
    pq.write_table(drifted, folder / f"session_date={DAYS[3]}" / "1700000000.1-0.parquet")
    dup = bronze_table("stocks_daily", DAYS[5], TICKERS)
    pq.write_table(
        pa.concat_tables([dup, dup.slice(0, 1)]),
        folder / f"session_date={DAYS[5]}" / "1700000000.1-0.parquet",
    )
    corrupt = folder / f"session_date={DAYS[7]}" / "1700000000.1-0.parquet"
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    problems = _problems(lake)
    text = "\n".join(f"{p.layer} {p.where} {p.message}" for p in problems)
    assert f"session_date={DAYS[3]}" in text and "transactions is double, elsewhere int64" in text
    assert f"session_date={DAYS[5]} 1 duplicate (ticker, window_start) rows" in text
    assert f"session_date={DAYS[7]}/1700000000.1-0.parquet" in text
    assert validate.validate_command() == 1


def test_silver_behind_bronze_and_gold_disagreeing_with_silver(lake: Path) -> None:
    import duckdb

    write_bronze(lake, "stocks_daily", calendar.sessions("2025-07-01", "2025-07-02"), TICKERS)
    with duckdb.connect(str(lake / "quantmini.duckdb")) as con:
        con.execute(
            "delete from main_marts.fct_stock_features_daily where ticker = 'CON' and session_date = ?",
            [DAYS[10]],
        )
    aapl = lake / "gold" / "qlib" / "features" / "aapl" / "close.day.bin"
    values = np.fromfile(aapl, dtype="<f4")
    values[1:] = 99.0
    values.tofile(aapl)
    problems = _problems(lake)
    silver = [p.message for p in problems if p.layer == "silver"]
    assert any("2 bronze sessions missing: 2025-07-01, 2025-07-02" in m for m in silver)
    assert any(f"first {DAYS[10]}: bronze 4, silver 3" in m for m in silver)
    gold = [p.message for p in problems if p.layer == "gold"]
    assert any("sampled values disagree" in m and "AAPL" in m for m in gold)


def test_gold_missing_instrument_and_calendar_sessions(lake: Path) -> None:
    gold = lake / "gold" / "qlib"
    (gold / "calendars" / "day.txt").write_text("".join(f"{d}\n" for d in DAYS[:-1]))
    (gold / "instruments" / "all.txt").write_text(
        "".join(f"{to_qlib_symbol(t)}\t{DAYS[0]}\t{DAYS[-1]}\n" for t in TICKERS[:-1])
    )
    messages = [f"{p.where}: {p.message}" for p in _problems(lake) if p.layer == "gold"]
    assert any(m.startswith("calendars/day.txt: 1 silver sessions missing") for m in messages)
    assert any(m.startswith("instruments/all.txt: 1 silver tickers missing: CON") for m in messages)


def test_status_counts_sessions_rows_and_last_run(lake: Path) -> None:
    from loaders import runs

    settings = load_settings()
    run = runs.start_run(settings.runs_dir, "stocks_daily", "flatfiles", {})
    run.add("loaded", date=str(DAYS[0]))
    run.add("failed", date=str(DAYS[1]))
    run.finish()
    (lake / "bronze" / "stocks_daily" / f"session_date={DAYS[2]}" / "1700000000.1-0.parquet").unlink()
    rows = {r.dataset: r for r in status.collect(settings)}
    daily = rows["stocks_daily"]
    assert (daily.first, daily.last) == (DAYS[0], DAYS[-1])
    assert (daily.present, daily.missing) == (len(DAYS) - 1, 1)
    assert daily.rows == (len(DAYS) - 1) * len(TICKERS) and daily.bytes > 0
    assert daily.last_run_result == "failed (1 failed, 1 loaded)"
    assert rows["news"].files == 0 and rows["news"].last_run_at is None
    assert status.status_command() == 0


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "rect" and ("class", "cell") in attrs:
            self.cells.append(dict(attrs))


def test_report_writes_a_self_contained_heat_map(lake: Path) -> None:
    landing = lake / "landing" / "flatfiles" / "us_stocks_sip" / "day_aggs_v1" / "2025" / "05"
    landing.mkdir(parents=True)
    (landing / "2025-05-01.csv.gz").write_bytes(b"z" * 50_000)
    (lake / "bronze" / "stocks_daily" / f"session_date={DAYS[2]}" / "1700000000.1-0.parquet").unlink()
    out = lake / "reports" / "coverage.html"
    assert report.report_command(json_path=lake / "reports" / "coverage.json") == 0
    page = out.read_text()
    parser = _Cells()
    parser.feed(page)
    assert {"svg", "table", "title"} <= parser.tags
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    by_month = {
        c["data-month"]: (int(c["data-present"] or 0), int(c["data-sessions"] or 0)) for c in parser.cells
    }
    may = len([d for d in DAYS if d.month == 5])
    assert by_month == {"2025-05": (may - 1, may), "2025-06": (len(DAYS) - may, len(DAYS) - may)}
    summary = json.loads((lake / "reports" / "coverage.json").read_text())["datasets"][0]
    assert summary["instruments"] == len(TICKERS) and summary["start"] == str(DAYS[0])
    assert summary["compression_ratio"] == pytest.approx(50_000 / summary["bronze_bytes"], abs=1e-3)


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="headless chromium not installed",
)
def test_report_renders_in_a_browser(lake: Path, tmp_path: Path) -> None:
    from PIL import Image

    assert report.report_command() == 0
    shot = tmp_path / "report.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run(
        [
            str(browser),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1000,700",
            f"--screenshot={shot}",
            (lake / "reports" / "coverage.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    counts = {c: n for n, c in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20) or []}
    # the complete-month green: more than the 14x14 legend swatch, so the heat map cells were painted
    assert counts.get((0x2E, 0x7D, 0x32), 0) > 14 * 14 + report.CELL_W * report.CELL_H


def test_gold_minute_calendar_must_cover_bronze_minute_sessions(lake: Path) -> None:
    minute_days = DAYS[-3:]
    write_bronze(lake, "stocks_minute", minute_days, TICKERS)
    cal = lake / "gold" / "qlib" / "calendars" / "1min.txt"
    cal.write_text("".join(f"{d} 09:30:00\n{d} 09:31:00\n" for d in minute_days[:-1]))
    messages = [f"{p.where}: {p.message}" for p in _problems(lake) if p.layer == "gold"]
    assert messages == [f"calendars/1min.txt: 1 bronze minute sessions missing: {minute_days[-1]}"]


def test_a_dataset_with_several_tables_is_checked_table_by_table(lake: Path) -> None:
    """fundamentals keeps two tables with different columns: neither is schema drift of the other."""
    from loaders import bronze

    root = lake / "bronze"
    filings = pa.table(
        {"filing_date": pa.array(DAYS[:2]), "ticker": ["AAPL", "CON"], "company_name": ["A", "C"]}
    )
    items = pa.table(
        {
            "filing_date": pa.array(DAYS[:2]),
            "ticker": ["AAPL", "CON"],
            "line_item": ["revenues", "revenues"],
            "value": [1.0, 2.0],
        }
    )
    bronze.replace_partitions(root, "fundamentals/financial_filings", filings, "filing_date")
    bronze.replace_partitions(root, "fundamentals/financials", items, "filing_date")
    result = validate.validate(load_settings())
    assert result.problems == []
    assert any(c.startswith("bronze/fundamentals/financials:") for c in result.checked)
    assert any(c.startswith("bronze/fundamentals/financial_filings:") for c in result.checked)

    # drift inside one table is still reported, naming the file
    drifted = items.drop_columns(["value"]).append_column("value", pa.array(["x", "y"]))
    bronze.replace_partitions(root, "fundamentals/financials", drifted.slice(0, 1), "filing_date")
    problems = validate.validate(load_settings()).problems
    assert problems and all("fundamentals/financials/" in p.where for p in problems)


def test_default_validation_reads_only_new_or_changed_partitions(lake: Path) -> None:
    """After a clean run nothing is read again; damage a changed partition shows is found, and what
    only a full pass can see (silver losing an old, unchanged session) is left to --deep."""
    import duckdb

    first = validate.validate(load_settings())
    assert first.problems == [] and validate.state_path(load_settings()).is_file()
    assert len(first.bronze_counts["stocks_daily"]) == len(DAYS)

    again = validate.validate(load_settings())
    assert again.problems == [] and again.bronze_counts.get("stocks_daily", {}) == {}
    assert f"bronze/stocks_daily: 0 new or changed of {len(DAYS)} files" in again.checked

    with duckdb.connect(str(lake / "quantmini.duckdb")) as con:
        con.execute("delete from main_marts.fct_stock_features_daily where session_date = ?", [DAYS[0]])
    assert validate.validate(load_settings()).problems == []
    deep = [p.message for p in validate.validate(load_settings(), deep=True).problems]
    assert f"1 bronze sessions missing: {DAYS[0]}" in deep

    # a new session silver lacks is found by the default run, and again until it is fixed
    new_day = calendar.sessions("2025-07-01", "2025-07-01")
    write_bronze(lake, "stocks_daily", new_day, TICKERS)
    for _ in range(2):
        scoped = validate.validate(load_settings())
        assert set(scoped.bronze_counts["stocks_daily"]) == set(new_day)
        assert any(f"1 bronze sessions missing: {new_day[0]}" in p.message for p in scoped.problems)


def test_a_removed_partition_that_silver_still_has_is_reported(lake: Path) -> None:
    assert validate.validate(load_settings()).problems == []
    shutil.rmtree(lake / "bronze" / "stocks_daily" / f"session_date={DAYS[-1]}")
    messages = [p.message for p in validate.validate(load_settings()).problems]
    assert f"1 sessions not in bronze: {DAYS[-1]}" in messages


def test_a_changed_file_is_compared_with_the_recorded_schema(lake: Path) -> None:
    assert validate.validate(load_settings()).problems == []
    folder = lake / "bronze" / "stocks_daily" / f"session_date={DAYS[2]}"
    drifted = bronze_table("stocks_daily", DAYS[2], TICKERS).set_column(
        7, "transactions", pa.array([1.0] * len(TICKERS), pa.float64())
    )
    for f in folder.glob("*.parquet"):
        f.unlink()
    pq.write_table(drifted, folder / "1700000000.2-0.parquet")
    messages = [f"{p.where} {p.message}" for p in validate.validate(load_settings()).problems]
    assert any("transactions is double, elsewhere int64" in m for m in messages), messages


def test_status_shows_rest_spans_rows_per_table_and_the_rows_a_run_loaded(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from loaders import runs

    bronze = lake / "bronze"
    for table, days, per_day in (
        ("news", ["2025-01-02", "2025-01-03", "2025-02-28"], 4),
        ("fundamentals/financials", ["2024-11-01", "2025-02-14"], 3),
        ("fundamentals/financial_filings", ["2024-11-01", "2025-02-14"], 1),
    ):
        column = "published_date" if table == "news" else "filing_date"
        for day in days:
            folder = bronze / table / f"{column}={day}"
            folder.mkdir(parents=True)
            pq.write_table(
                pa.table({"id": [f"{day}-{i}" for i in range(per_day)]}), folder / "part-0.parquet"
            )
    settings = load_settings()
    run = runs.start_run(settings.runs_dir, "news", "rest", {})
    run.add("loaded", key="news", window="2025-01-02 .. 2025-02-28", rows=12, pages=3)
    run.finish()

    rows = {r.dataset: r for r in status.collect(settings)}
    news, fundamentals = rows["news"], rows["fundamentals"]
    assert (news.first, news.last, news.span_column) == (DAYS_REST[0], DAYS_REST[1], "published_date")
    assert news.rows == 12 and news.tables == {"news": 12}
    assert news.last_run_result == "ok (12 rows, 3 pages)"
    assert (str(fundamentals.first), str(fundamentals.last)) == ("2024-11-01", "2025-02-14")
    assert fundamentals.tables == {"financial_filings": 2, "financials": 6} and fundamentals.rows == 8
    assert (news.present, news.missing) == (None, None)

    assert status.status_command(json_out=True) == 0
    by_name = {r["dataset"]: r for r in json.loads(capsys.readouterr().out)}
    assert by_name["news"]["first_date"] == "2025-01-02" and by_name["news"]["last_date"] == "2025-02-28"
    assert by_name["fundamentals"]["tables"] == {"financial_filings": 2, "financials": 6}
    assert by_name["stocks_daily"]["first_session"] == str(DAYS[0])


DAYS_REST = (dt.date(2025, 1, 2), dt.date(2025, 2, 28))


def _write_field(lake: Path, ticker: str, name: str, values: list[float]) -> None:
    folder = lake / "gold" / "qlib" / "features" / feature_dir_name(to_qlib_symbol(ticker))
    np.array([0, *values], dtype="<f4").tofile(folder / f"{name}.day.bin")


def test_gold_health_names_ticker_and_session_with_documented_severity(lake: Path) -> None:
    n = len(DAYS)
    # AAPL: a partial row (no volume on DAYS[5]) and a non-positive factor on DAYS[6]
    volume = [1000.0] * n
    volume[5] = float("nan")
    _write_field(lake, "AAPL", "volume", volume)
    factor = [1.0] * n
    factor[6] = 0.0
    _write_field(lake, "AAPL", "factor", factor)
    # BRK.B: the raw close doubles on DAYS[10] with no factor change (warning), and a volume spike on DAYS[30]
    close = [20.0] * 10 + [40.0] * (n - 10)
    for name in ("open", "high", "low", "close"):
        _write_field(lake, "BRK.B", name, close)
    volume = [1000.0 + (i % 7) for i in range(n)]
    volume[30] = 50_000.0
    _write_field(lake, "BRK.B", "volume", volume)
    # KIMpL: a 2-for-1 split on DAYS[12] explained by the factor (no finding), then a factor step on
    # DAYS[20] with no raw move: the adjustment made a jump (error)
    raw = [30.0] * 12 + [15.0] * (n - 12)
    factor = [0.5] * 12 + [1.0] * (n - 12)
    factor[20:] = [3.0] * (n - 20)
    factor = [f / factor[-1] for f in factor]
    for name in ("open", "high", "low", "close"):
        _write_field(lake, "KIMpL", name, [r * f for r, f in zip(raw, factor, strict=True)])
    _write_field(lake, "KIMpL", "factor", factor)
    # CON: no factor file at all
    (lake / "gold" / "qlib" / "features" / feature_dir_name("CON") / "factor.day.bin").unlink()

    checks = ("partial_row", "bad_factor", "price_jump", "volume_spike", "adjustment_jump", "missing_field")
    problems = [p for p in _problems(lake) if p.message.startswith(checks)]  # gold-vs-silver checks aside
    got = {(p.severity, p.where, p.message.split(":")[0]) for p in problems}
    assert got == {
        ("error", f"AAPL {DAYS[5]}", "partial_row"),
        ("error", f"AAPL {DAYS[6]}", "bad_factor"),
        ("warning", f"BRK.B {DAYS[10]}", "price_jump"),
        ("warning", f"BRK.B {DAYS[30]}", "volume_spike"),
        ("error", f"KIMpL {DAYS[20]}", "adjustment_jump"),
        ("error", "CON", "missing_field"),
    }, problems
    assert validate.validate_command(json_path=lake / "v.json") == 1
    saved = json.loads((lake / "v.json").read_text())
    assert {p["severity"] for p in saved["problems"]} == {"error", "warning"}


def test_gold_health_warnings_alone_do_not_fail_validation(lake: Path) -> None:
    n = len(DAYS)
    close = [20.0] * 10 + [9.0] * (n - 10)  # a -55 % move, no corporate action
    for name in ("open", "high", "low", "close"):
        _write_field(lake, "AAPL", name, close)
    import duckdb

    con = duckdb.connect(str(lake / "quantmini.duckdb"))
    con.execute(
        "update main_marts.fct_stock_features_daily set adj_close = case when session_date >= ? "
        "then 9.0 else 20.0 end where ticker = 'AAPL'",
        [DAYS[10]],
    )
    con.close()
    problems = _problems(lake)
    assert [(p.severity, p.where) for p in problems] == [("warning", f"AAPL {DAYS[10]}")]
    assert "no split or dividend" in problems[0].message
    assert validate.validate_command() == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [("volume", -5.0), ("open", 0.0), ("close", -1.0), ("high", 0.5), ("low", 1e6), ("transactions", -1)],
)
def test_rows_breaking_the_bronze_row_contract_are_named(lake: Path, column: str, value: float) -> None:
    """validate checks the rules the parser enforces, so bad rows that reached bronze another way show."""
    folder = lake / "bronze" / "stocks_daily" / f"session_date={DAYS[4]}"
    table = bronze_table("stocks_daily", DAYS[4], TICKERS)
    index = table.schema.get_field_index(column)
    values = table.column(column).to_pylist()
    values[0] = value
    table = table.set_column(index, column, pa.array(values, table.schema.field(index).type))
    for old in folder.glob("*.parquet"):
        old.unlink()
    pq.write_table(table, folder / "1700000000.1-0.parquet")
    text = "\n".join(f"{p.layer} {p.where} {p.message}" for p in _problems(lake))
    assert f"session_date={DAYS[4]} 1 rows break the bronze row contract" in text


def test_gold_health_checks_the_new_sessions_and_the_instruments_written_whole(lake: Path) -> None:
    """After a clean run only sessions after the last one checked are read, except for instruments gold
    wrote whole since (their manifest token changed: a split re-stating history); `--deep` reads all."""
    from loaders.gold.writer import MANIFEST_NAME, MANIFEST_VERSION

    gold = lake / "gold" / "qlib"

    def manifest(tokens: dict[str, str]) -> None:
        symbols = {t: {"symbol": to_qlib_symbol(t), "token": tokens[t]} for t in TICKERS}
        (gold / MANIFEST_NAME).write_text(
            json.dumps({"version": MANIFEST_VERSION, "day": {"symbols": symbols}})
        )

    tokens = {t: f"t{i}" for i, t in enumerate(TICKERS)}
    manifest(tokens)
    assert _problems(lake) == []  # the first run checks everything and records it
    n = len(DAYS)
    factor = [1.0] * n
    factor[3] = 0.0  # damage on an old session, files not written whole (token unchanged): not re-read
    _write_field(lake, "AAPL", "factor", factor)
    assert [p for p in _problems(lake) if "bad_factor" in p.message] == []
    assert any("bad_factor" in p.message for p in validate.validate(load_settings(), deep=True).problems)
    manifest({**tokens, "AAPL": "rewritten"})  # AAPL written whole since: its whole history is checked
    found = [p for p in _problems(lake) if "bad_factor" in p.message]
    assert [p.where for p in found] == [f"AAPL {DAYS[3]}"]

    # a bad value on a session after the last one checked is found while reading only the files' ends
    factor[3] = 1.0
    _write_field(lake, "AAPL", "factor", factor)
    assert _problems(lake) == []
    state = json.loads(validate.state_path(load_settings()).read_text())
    assert state["datasets"]["gold_health"]["last_session"] == str(DAYS[-1])
    state["datasets"]["gold_health"]["last_session"] = str(DAYS[-6])
    validate.state_path(load_settings()).write_text(json.dumps(state))
    volume = [1000.0] * n
    volume[-3] = float("nan")
    _write_field(lake, "BRK.B", "volume", volume)
    found = [p for p in _problems(lake) if "partial_row" in p.message]
    assert [p.where for p in found] == [f"BRK.B {DAYS[-3]}"]


def test_health_of_new_sessions_reads_the_file_ends_and_looks_back_far_enough(tmp_path: Path) -> None:
    """`check_instrument(since=...)` finds what a whole-history check finds on the sessions from `since`
    on, also right after a halt longer than its usual look-back (then it reads the whole files)."""
    from loaders.ops import health

    cal = [str(d) for d in calendar.sessions("2024-01-02", "2025-06-30")]
    n = 300
    for halted in (False, True):
        folder = tmp_path / ("halted" if halted else "plain")
        folder.mkdir()
        volume = np.full(n, 1000.0) + np.arange(n) % 7
        factor = np.ones(n)
        factor[50] = 0.0  # old damage: not a finding of the scoped check
        volume[285] = 80_000.0  # a spike on a new session
        close = np.full(n, 20.0)
        values = {
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": volume,
            "factor": factor,
        }
        if halted:
            for v in values.values():
                v[150:284] = np.nan
        for name, v in values.items():
            np.concatenate(([10.0], v)).astype("<f4").tofile(folder / f"{name}.day.bin")
        since = 10 + 280
        whole = health.check_instrument("X", folder, cal)
        scoped = health.check_instrument("X", folder, cal, since)
        assert {(f.check, f.session) for f in whole} >= {("bad_factor", cal[60]), ("volume_spike", cal[295])}
        assert (
            [(f.check, f.session) for f in scoped]
            == [(f.check, f.session) for f in whole if f.session >= cal[since]]
            == [("volume_spike", cal[295])]
        )
