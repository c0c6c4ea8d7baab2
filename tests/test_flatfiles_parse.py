"""Parsing landing files: types by header name, bounded batches, and clear errors on bad input."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from loaders.flatfiles import settings as ff
from loaders.flatfiles.parse import FlatFileError, read_flatfile, session_bounds_ns

HEADER = "ticker,volume,open,close,high,low,window_start,transactions"
SESSION = dt.date(2023, 3, 28)
KEY = f"us_stocks_sip/day_aggs_v1/2023/03/{SESSION}.csv.gz"
MIDNIGHT_ET = 1679976000000000000  # 2023-03-28 00:00 America/New_York
# first rows of Polygon's published stocks day-aggregates sample (window_start 16:00 ET of the session)
SAMPLE = [
    "BCC,248274,61.68,61.99,62.565,61.41,1680033600000000000,4073",
    "CLDX,882958,35.03,34.78,35.81,34.39,1680033600000000000,9971",
    "TRND,2084,26.73,26.7662,26.7662,26.7201,1680033600000000000,11",
]


@pytest.fixture(autouse=True, params=["in_memory", "streamed"])
def inflate_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both reading paths: small files inflated in one call, large ones streamed."""
    if request.param == "streamed":
        monkeypatch.setattr(ff, "INFLATE_IN_MEMORY_BYTES", 0)
    return str(request.param)


def _write(tmp_path: Path, lines: list[str], header: str = HEADER, name: str = "f.csv.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(("\n".join([header, *lines]) + "\n").encode()))
    return path


def _load(path: Path, key: str = KEY, **kw: int) -> pa.Table:
    return pa.concat_tables(list(read_flatfile(path, key, "etag-1", "load-1", **kw)))


def _error(path: Path, key: str = KEY) -> FlatFileError:
    with pytest.raises(FlatFileError) as info:
        _load(path, key)
    assert key in str(info.value)
    return info.value


def test_polygon_sample_rows_load_with_bronze_types_and_lineage(tmp_path: Path) -> None:
    table = _load(_write(tmp_path, SAMPLE))
    assert table.schema.names == [
        "ticker",
        "volume",
        "open",
        "high",
        "low",
        "close",
        "window_start",
        "transactions",
        "_source_key",
        "_source_etag",
        "_dlt_load_id",
    ]
    assert table.schema.field("window_start").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("volume").type == pa.float64()
    row = table.to_pylist()[0]
    assert row["ticker"] == "BCC" and row["high"] == 62.565 and row["transactions"] == 4073
    assert row["window_start"] == dt.datetime(2023, 3, 28, 20, tzinfo=dt.UTC)
    assert (row["_source_key"], row["_source_etag"], row["_dlt_load_id"]) == (KEY, "etag-1", "load-1")


def test_reordered_header_gives_the_same_rows(tmp_path: Path) -> None:
    order = [6, 0, 2, 1, 3, 4, 5, 7]
    cols = HEADER.split(",")
    lines = [",".join(line.split(",")[i] for i in order) for line in SAMPLE]
    shuffled = _load(_write(tmp_path, lines, ",".join(cols[i] for i in order)))
    assert shuffled.equals(_load(_write(tmp_path, SAMPLE, name="plain.csv.gz")))


def test_fractional_volume_is_kept(tmp_path: Path) -> None:
    table = _load(_write(tmp_path, ["ABC,12.5,1,1,1,1,1680033600000000000,3"]))
    assert table.column("volume").to_pylist() == [12.5]


def test_a_day_bar_later_on_the_session_day_is_accepted(tmp_path: Path) -> None:
    lo, hi = session_bounds_ns(SESSION)
    assert lo == MIDNIGHT_ET
    lines = [
        f"A,1,1,1,1,1,{lo},1",
        f"B,1,1,1,1,1,{lo + 16 * 3600 * 10**9},1",
        f"C,1,1,1,1,1,{hi - 60 * 10**9},1",
    ]
    assert _load(_write(tmp_path, lines)).num_rows == 3


def test_minute_files_stream_in_bounded_batches(tmp_path: Path) -> None:
    lines = [f"T{i % 7},{i},1,1,1,1,{MIDNIGHT_ET + i * 10**9},1" for i in range(20_000)]  # one bar a second
    path = _write(tmp_path, lines)
    sizes = [t.num_rows for t in read_flatfile(path, KEY, "e", "l", block_size=64 << 10, batch_rows=4_000)]
    assert sum(sizes) == 20_000
    assert len(sizes) > 3
    assert max(sizes) < 4_000 + 3_000  # a batch closes once it reaches batch_rows (plus one block)


@pytest.mark.parametrize(
    ("header", "field", "reason"),
    [
        (HEADER + ",vwap", "vwap", "unexpected header column"),
        (HEADER.replace(",transactions", ""), "transactions", "header lacks a column"),
        (HEADER.replace("close", "open"), "open", "duplicate header column"),
    ],
)
def test_header_problems_name_line_1_and_the_column(
    tmp_path: Path, header: str, field: str, reason: str
) -> None:
    error = _error(_write(tmp_path, SAMPLE, header))
    assert (error.line, error.field) == (1, field)
    assert reason in str(error)


def test_row_with_a_missing_field_names_its_line(tmp_path: Path) -> None:
    lines = [*SAMPLE, "BAD,1,2,3,4,5,1680033600000000000"]
    error = _error(_write(tmp_path, lines))
    assert (error.line, error.field) == (5, "transactions")
    assert "expected 8 fields, found 7" in str(error)


def test_non_numeric_price_names_line_and_field(tmp_path: Path) -> None:
    lines = [*SAMPLE[:2], "BAD,1,abc,3,4,5,1680033600000000000,1", SAMPLE[2]]
    error = _error(_write(tmp_path, lines))
    assert (error.line, error.field) == (4, "open")
    assert "'abc' is not a number" in str(error)


@pytest.mark.parametrize(
    ("line", "field"),
    [("X,1,,1,1,1,1680033600000000000,1", "open"), (",1,1,1,1,1,1680033600000000000,1", "ticker")],
)
def test_empty_value_is_a_missing_field(tmp_path: Path, line: str, field: str) -> None:
    error = _error(_write(tmp_path, [SAMPLE[0], line]))
    assert (error.line, error.field) == (3, field)


def test_non_finite_price_is_rejected(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, [SAMPLE[0], "X,1,nan,1,1,1,1680033600000000000,1"]))
    assert (error.line, error.field) == (3, "open")


def test_timestamp_outside_the_files_session_names_line_and_field(tmp_path: Path) -> None:
    day_before = MIDNIGHT_ET - 60 * 10**9  # 23:59 ET the previous evening
    error = _error(_write(tmp_path, [*SAMPLE, f"X,1,1,1,1,1,{day_before},1"]))
    assert (error.line, error.field) == (5, "window_start")
    assert "outside session 2023-03-28" in str(error)


def test_utc_date_of_the_session_is_not_used(tmp_path: Path) -> None:
    # 20:30 ET on the session day is already the next day in UTC: still this session
    late = MIDNIGHT_ET + (20 * 60 + 30) * 60 * 10**9
    assert _load(_write(tmp_path, [f"X,1,1,1,1,1,{late},1"])).num_rows == 1


def test_truncated_gzip_is_rejected(tmp_path: Path) -> None:
    lines = [f"T{i},1,1,1,1,1,{MIDNIGHT_ET},1" for i in range(50_000)]
    path = _write(tmp_path, lines)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    error = _error(path)
    assert "corrupt or truncated gzip" in str(error)


def test_corrupt_gzip_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, SAMPLE)
    data = bytearray(path.read_bytes())
    data[30:40] = b"\xff" * 10
    path.write_bytes(bytes(data))
    assert "gzip" in str(_error(path))


def test_not_gzip_at_all_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv.gz"
    path.write_text(HEADER + "\n" + SAMPLE[0] + "\n")
    assert "gzip" in str(_error(path))


def test_header_only_file_is_rejected(tmp_path: Path) -> None:
    error = _error(_write(tmp_path, []))
    assert "no data rows" in str(error)


def test_a_file_rejected_early_leaves_no_inflating_thread_behind(tmp_path: Path, inflate_path: str) -> None:
    import threading

    if inflate_path == "in_memory":
        pytest.skip("no inflating thread on the in-memory path")

    lines = [f"T{i},1,1,1,1,1,{MIDNIGHT_ET},1" for i in range(200_000)]
    lines[10] = "BAD,1,1,1,1,1,1,1"  # outside the session, in the first block
    with pytest.raises(FlatFileError):
        _load(_write(tmp_path, lines), block_size=1 << 16)
    assert not [t for t in threading.enumerate() if t.name == "gunzip" and t.is_alive()]


def test_small_files_are_inflated_in_memory_and_large_ones_streamed(
    tmp_path: Path, inflate_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.flatfiles import parse

    started: list[Path] = []
    original = parse.ThreadedGunzip.__init__

    def spy(self: Any, path: Path, *args: Any, **kwargs: Any) -> None:
        started.append(path)
        original(self, path, *args, **kwargs)

    monkeypatch.setattr(parse.ThreadedGunzip, "__init__", spy)
    path = _write(tmp_path, SAMPLE)
    assert _load(path).num_rows == 3
    assert started == ([] if inflate_path == "in_memory" else [path])


def test_configuration_errors_are_not_retried_but_network_errors_are():
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
        ReadTimeoutError,
    )

    from loaders.flatfiles.s3 import is_transient

    assert not is_transient(NoCredentialsError())
    assert not is_transient(ParamValidationError(report="Bucket: invalid"))
    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))


# --------------------------------------------------------------------------------------------------- bad rows
# The bronze row contract (docs/ingestion.md, "Bad rows"): a file with one violating row is rejected whole,
# with its line and field, so nothing wrong reaches silver and the session's bronze stays as it was.
BAD_ROWS = [
    ("X,-5,1,1,1,1,1680033600000000000,1", "volume", "volume -5.0 is negative"),
    ("X,5,0,1,1,1,1680033600000000000,1", "open", "price 0.0 is not positive"),
    ("X,5,1,-1,1,1,1680033600000000000,1", "close", "price -1.0 is not positive"),
    ("X,5,1,1,1,1,1680033600000000000,-2", "transactions", "transactions -2 is negative"),
    ("X,5,1.5,1.5,1,2,1680033600000000000,1", "high", "high 1.0 is below low 2.0"),
    ("X,5,3,1,2,1,1680033600000000000,1", "high", "high 2.0 is below open 3.0 or close 1.0"),
    ("X,5,2,3,4,2.5,1680033600000000000,1", "low", "low 2.5 is above open 2.0 or close 3.0"),
    (
        SAMPLE[0],
        "window_start",
        "ticker 'BCC' at window_start 1680033600000000000 repeats line 2 with the same values",
    ),
    (
        SAMPLE[1].replace(",9971", ",9972"),
        "window_start",
        "ticker 'CLDX' at window_start 1680033600000000000 repeats line 3 with different transactions",
    ),
]


@pytest.mark.parametrize(("row", "field", "message"), BAD_ROWS)
def test_a_row_breaking_the_bronze_contract_rejects_the_file_naming_line_and_field(
    tmp_path: Path, row: str, field: str, message: str
) -> None:
    error = _error(_write(tmp_path, [*SAMPLE, row]))
    assert (error.line, error.field) == (5, field)
    assert message in str(error)


def test_the_earliest_bad_row_is_the_one_reported(tmp_path: Path) -> None:
    rows = [*SAMPLE, "X,5,2,3,4,2.5,1680033600000000000,1", "Y,-5,1,1,1,1,1680033600000000000,1"]
    assert (_error(_write(tmp_path, rows)).line, _error(_write(tmp_path, rows)).field) == (5, "low")


def test_a_repeated_bar_in_a_later_batch_is_found(tmp_path: Path) -> None:
    rows = [f"T{i % 5},1,1,1,1,1,{MIDNIGHT_ET + i * 10**9},1" for i in range(3000)]
    rows.append(rows[10])
    with pytest.raises(FlatFileError) as info:
        _load(_write(tmp_path, rows), block_size=16 << 10, batch_rows=500)
    assert info.value.line == 3002 and "repeats line 12" in str(info.value)


def _sorted_minute_rows(tickers: int, minutes: int) -> list[str]:
    """Rows in Polygon's order: by ticker, then window_start."""
    return [
        f"T{t:03d},1,1,1,1,1,{MIDNIGHT_ET + (600 + m) * 60 * 10**9},1"
        for t in range(tickers)
        for m in range(minutes)
    ]


@pytest.mark.parametrize("at", [1, 499, 500, 501, 2999])
def test_a_repeated_bar_in_a_file_in_polygon_order_is_found_within_and_across_batches(
    tmp_path: Path, at: int
) -> None:
    """Sorted files skip the hash check; a bar repeated right after itself must still be caught."""
    rows = _sorted_minute_rows(10, 300)
    rows.insert(at + 1, rows[at])
    with pytest.raises(FlatFileError) as info:
        _load(_write(tmp_path, rows), block_size=16 << 10, batch_rows=500)
    assert info.value.line == at + 3 and f"repeats line {at + 2}" in str(info.value)


def test_a_file_in_polygon_order_needs_no_hash_check_and_loads_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loaders.flatfiles import parse

    trackers: list[Any] = []

    class Recorded(parse._KeyTracker):
        def __init__(self) -> None:
            super().__init__()
            trackers.append(self)

    monkeypatch.setattr(parse, "_KeyTracker", Recorded)
    rows = _sorted_minute_rows(10, 300)
    assert _load(_write(tmp_path, rows), block_size=16 << 10, batch_rows=500).num_rows == 3000
    assert trackers[-1].ordered and trackers[-1].rows == 3000
    # the same rows out of order take the hash check, and load the same
    shuffled = rows[1500:] + rows[:1500]
    assert _load(_write(tmp_path, shuffled), block_size=16 << 10, batch_rows=500).num_rows == 3000
    assert not trackers[-1].ordered


def test_invalid_utf8_names_line_byte_and_field(tmp_path: Path) -> None:
    path = tmp_path / "f.csv.gz"
    body = "\n".join([HEADER, *SAMPLE]).encode() + b"\nB\xffC,1,1,1,1,1,1680033600000000000,1\n"
    path.write_bytes(gzip.compress(body))
    error = _error(path)
    assert (error.line, error.field) == (5, "ticker")
    assert "invalid UTF-8: byte 2 of the line is 0xff" in str(error)


def test_valid_utf8_in_a_ticker_is_kept(tmp_path: Path) -> None:
    assert _load(_write(tmp_path, ["BCÉ,1,1,1,1,1,1680033600000000000,1"])).column("ticker").to_pylist() == [
        "BCÉ"
    ]


def test_a_timestamp_too_large_for_int64_names_its_own_line_and_field(tmp_path: Path) -> None:
    rows = [f"T{i},1,1,1,1,1,1680033600000000000,1" for i in range(19)]
    error = _error(_write(tmp_path, [*rows, "X,1,1,1,1,1,99999999999999999999999,1"]))
    assert (error.line, error.field) == (21, "window_start")
    assert "out of range for a 64-bit integer" in str(error)
