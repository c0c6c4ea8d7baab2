"""Constants of the flat-file datasets: the registry's flat-file entries, column contract, tuning knobs."""

from __future__ import annotations

import re

import pyarrow as pa

from loaders import datasets as registry
from loaders.datasets import Dataset

# The `-t` datasets served as one gzip CSV per NYSE session (loaders/datasets.py holds their entries).
DATASETS: dict[str, Dataset] = registry.of_kind("flatfile")

KEY_DATE = re.compile(r"/(\d{4})/(\d{2})/(\d{4}-\d{2}-\d{2})\.csv\.gz$")

# Polygon's header, in the order it serves it; files are parsed by name, so order may differ.
CSV_COLUMNS: tuple[str, ...] = (
    "ticker",
    "volume",
    "open",
    "close",
    "high",
    "low",
    "window_start",
    "transactions",
)
CSV_TYPES: dict[str, pa.DataType] = {
    "ticker": pa.string(),
    "volume": pa.float64(),  # Polygon sometimes serves fractional volumes
    "open": pa.float64(),
    "close": pa.float64(),
    "high": pa.float64(),
    "low": pa.float64(),
    "window_start": pa.int64(),  # Unix nanoseconds in the file
    "transactions": pa.int64(),
}
NUMERIC_COLUMNS: tuple[str, ...] = ("volume", "open", "close", "high", "low", "window_start", "transactions")

# Bronze column contract (docs/architecture.md); session_date lives in the Hive folder name.
BRONZE_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("volume", pa.float64()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("window_start", pa.timestamp("us", tz="UTC")),
        ("transactions", pa.int64()),
        ("_source_key", pa.string()),
        ("_source_etag", pa.string()),
        ("_dlt_load_id", pa.string()),
    ]
)
PARTITION_COLUMN = registry.SESSION_PARTITION

# The bronze row contract (docs/ingestion.md, "Bad rows"), as DuckDB conditions a row must not meet.
# The parser enforces the same rules on every file before it reaches bronze (`parse._check_values`,
# plus one bar per (ticker, window_start) and window_start inside the session); `validate` counts the
# bronze rows meeting any of these, so data written before the rules or by hand is caught too.
ROW_VIOLATIONS_SQL: dict[str, str] = {
    "price not positive": "open <= 0 or high <= 0 or low <= 0 or close <= 0",
    "negative volume or transactions": "volume < 0 or transactions < 0",
    "high below low": "high < low",
    "high or low outside open/close": "high < greatest(open, close) or low > least(open, close)",
    "missing value": (
        "ticker is null or ticker = '' or volume is null or open is null or high is null or low is null "
        "or close is null or window_start is null or transactions is null"
    ),
}

# CSV bytes the streaming reader decodes at a time, and rows gathered before one Parquet file is written:
# peak memory is a few batches whatever the file size.
CSV_BLOCK_SIZE = 8 << 20
BATCH_ROWS = 1 << 18
# gzip files up to this size are inflated in one call and parsed from memory (no inflating thread)
INFLATE_IN_MEMORY_BYTES = 4 << 20

# A file of at most SMALL_FILE_ROWS rows is "small": its rows are gathered with other small files' into one
# extract file of up to GROUP_ROWS rows, which the destination splits by session (a cheap rewrite), instead
# of costing a dlt job each. Larger files keep one extract file per batch, hard-linked into bronze.
SMALL_FILE_ROWS = BATCH_ROWS // 4
GROUP_ROWS = BATCH_ROWS

DOWNLOAD_CHUNK = 1 << 20
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# Retries of one S3 request (loaders/flatfiles/s3.py): 5xx, timeouts, resets and short bodies get
# DOWNLOAD_ATTEMPTS with full-jitter backoff from BACKOFF_INITIAL up to BACKOFF_MAX seconds; a refused
# connection or unknown host gets CONNECT_ATTEMPTS, then the run stops; throttling is waited out (the wait is
# shared by every request of the run) for up to THROTTLE_PATIENCE_SECONDS per request.
DOWNLOAD_ATTEMPTS = 6
CONNECT_ATTEMPTS = 3
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 8.0
THROTTLE_PATIENCE_SECONDS = 600.0
# A throttling answer without Retry-After pauses every request for THROTTLE_BACKOFF_INITIAL seconds,
# doubling (up to THROTTLE_BACKOFF_MAX) while requests sent after the pause are throttled again. A
# Retry-After is honoured as given, capped at MAX_RETRY_AFTER_SECONDS.
THROTTLE_BACKOFF_INITIAL = 0.5
THROTTLE_BACKOFF_MAX = 20.0
MAX_RETRY_AFTER_SECONDS = 120.0
# Access denied to this many first files, none readable: the key pair or the plan is wrong, the run stops.
DENIED_LIMIT = 3

# A session's file is due this many hours after the session's close (QM_PUBLISH_GRACE_HOURS overrides).
# Until then a missing file is "pending" (tried again by the next run), afterwards a missing file inside
# the published range is a failure. 24 h covers Polygon's next-morning publication of minute files.
DEFAULT_PUBLISH_GRACE_HOURS = 24.0
