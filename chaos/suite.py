"""The bounded fault suite behind `make chaos` (docs/reliability.md says what each trial proves).

Every trial runs real `quantmini` processes (or the real in-process code paths) against a sandbox on
loopback, each in its own data dir, and compares bronze with a clean, uninterrupted load of the same
range: a row of the clean load missing afterwards is a row lost, a row present more often than in the
clean load is a row duplicated. A trial passes when every run behaved as documented (a kill was really
delivered at its phase, bad input was rejected naming line and field, ...) and no row was lost or
duplicated. Kills are SIGKILL at a chosen on-disk phase (`chaos.killer`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CANARY_REST = "canary-rest-9f2c41d7e0"
CANARY_S3 = "canary-s3-5b7e0a13c8"
DAYS = ["2025-10-01", "2025-10-02", "2025-10-03", "2025-10-06", "2025-10-07", "2025-10-08"]
FLAT_COLUMNS = "ticker, volume, open, high, low, close, window_start, transactions, _source_key, session_date"
REST_COLUMNS = "columns(c -> not starts_with(c, '_dlt'))"
NEWS_FIRST = ("-s", "2025-10-01", "-e", "2025-11-10")
NEWS_NEXT = ("-e", "2025-12-10")
NEWS_ALL = ("-s", "2025-10-01", "-e", "2025-12-10")


@dataclass
class Result:
    trial: str
    runs: int = 0
    passed: bool = True
    lost: int = 0
    duplicated: int = 0
    note: str = ""
    skipped: str = ""

    def fail(self, why: str) -> None:
        self.passed = False
        self.note = (self.note + "; " if self.note else "") + why


@dataclass
class Context:
    root: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)
    clean: dict[tuple[str, ...], Counter[str]] = field(default_factory=dict)
    bases: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def data_dir(self, name: str) -> Path:
        path = self.root / "trials" / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def start_from(self, data: Path, dataset: str, *args: str) -> Any:
        """`data` as an ordinary first `ingest -t dataset args` leaves it (run once, then copied)."""
        key = ("base", dataset, *args)
        with _CLEAN_LOCK:
            base = self.root / "trials" / "-".join(a.strip("-") for a in key)
            if key not in self.bases:
                shutil.rmtree(base, ignore_errors=True)
                self.bases[key] = self.run(base, "ingest", "-t", dataset, *args)
        shutil.copytree(base, data, symlinks=True)
        return self.bases[key]

    def run(self, data: Path, *args: str, phase: str | None = None, after: int = 1, **env: str) -> Any:
        prefix = ["-m", "chaos.killer", phase, str(after), "--"] if phase else ["-m", "loaders.cli"]
        done = subprocess.run(
            [sys.executable, *prefix, *args],
            env={
                **os.environ,
                **self.env,
                "QM_DATA_DIR": str(data),
                "DLT_DATA_DIR": str(data / "dlt"),
                "PYTHONPATH": str(REPO),
                **env,
            },
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        self.outputs.append(done.stdout + done.stderr)
        return done


def rows(data: Path, dataset: str, columns: str) -> Counter[str]:
    import duckdb

    glob = data / "bronze" / dataset / "*" / "*.parquet"
    if not any((data / "bronze" / dataset).glob("*/*.parquet")):
        return Counter()
    sql = f"select {columns} from read_parquet('{glob}', hive_partitioning = true)"
    with duckdb.connect() as con:
        return Counter(repr(r) for r in con.sql(sql).fetchall())


def compare(result: Result, got: Counter[str], clean: Counter[str]) -> None:
    result.lost += sum((clean - got).values())
    result.duplicated += sum((got - clean).values())
    if got != clean:
        result.fail(f"bronze differs from a clean load ({result.lost} lost, {result.duplicated} extra)")


def clean_rows(ctx: Context, dataset: str, columns: str, *args: str) -> Counter[str]:
    key = (dataset, *args)
    with _CLEAN_LOCK:
        return _clean_rows_locked(ctx, key, dataset, columns, *args)


_CLEAN_LOCK = threading.Lock()


def _clean_rows_locked(
    ctx: Context, key: tuple[str, ...], dataset: str, columns: str, *args: str
) -> Counter[str]:
    if key not in ctx.clean:
        data = ctx.data_dir("clean-" + "-".join(a.strip("-") for a in key))
        done = ctx.run(data, "ingest", "-t", dataset, *args)
        if done.returncode != 0:
            raise RuntimeError(f"clean load of {key} failed: {done.stderr[-2000:]}")
        ctx.clean[key] = rows(data, dataset, columns)
    return ctx.clean[key]


def _staging_left(data: Path) -> list[str]:
    staging = data / "bronze" / ".staging"
    return [str(p.relative_to(data)) for p in staging.rglob("*.parquet")] if staging.exists() else []


# --------------------------------------------------------------------------------------------------- kills


FLAT_PHASES = [
    ("download", 2),
    ("parse", 2),
    ("extract-commit", 1),
    ("normalize", 1),
    ("normalize-commit", 1),
    ("load-job", 1),
    ("load-complete", 1),
    ("swap", 2),
    ("ledger", 2),
]
REST_PHASES = [
    ("parse", 1),
    ("extract-commit", 1),
    ("normalize", 1),
    ("normalize-commit", 1),
    ("load-job", 1),
    ("load-complete", 1),
    ("swap", 1),
    ("ledger", 2),
]


def kill_flatfile(ctx: Context, dataset: str, phase: str, after: int, days: int = 6) -> Result:
    """Load 3 sessions, re-load 6 with --full killed at `phase`, then one ordinary run."""
    result = Result(f"kill {dataset} at {phase}")
    data = ctx.data_dir(f"kill-{dataset}-{phase}")
    window = ("-s", DAYS[0], "-e", DAYS[days - 1])
    first = ctx.start_from(data, dataset, "-s", DAYS[0], "-e", DAYS[2])
    killed = ctx.run(data, "ingest", "-t", dataset, *window, "--full", phase=phase, after=after)
    again = ctx.run(data, "ingest", "-t", dataset, *window)
    result.runs = 3
    if first.returncode != 0:
        result.fail(f"first load exited {first.returncode}")
    if killed.returncode != -9:
        result.fail(f"phase not reached (exit {killed.returncode})")
    if again.returncode != 0:
        result.fail(f"the next run exited {again.returncode}: {again.stderr.strip()[-300:]}")
    compare(result, rows(data, dataset, FLAT_COLUMNS), clean_rows(ctx, dataset, FLAT_COLUMNS, *window))
    if _staging_left(data):
        result.fail("staging left behind")
    return result


def kill_rest(ctx: Context, phase: str, after: int) -> Result:
    """Load news up to 2025-11-10, continue to 2025-12-10 killed at `phase`, then one ordinary run."""
    result = Result(f"kill news (REST) at {phase}")
    data = ctx.data_dir(f"kill-news-{phase}")
    first = ctx.start_from(data, "news", *NEWS_FIRST)
    killed = ctx.run(data, "ingest", "-t", "news", *NEWS_NEXT, phase=phase, after=after)
    again = ctx.run(data, "ingest", "-t", "news", *NEWS_NEXT)
    result.runs = 3
    if first.returncode != 0:
        result.fail(f"first load exited {first.returncode}")
    if killed.returncode != -9:
        result.fail(f"phase not reached (exit {killed.returncode})")
    if again.returncode != 0:
        result.fail(f"the next run exited {again.returncode}: {again.stderr.strip()[-300:]}")
    compare(result, rows(data, "news", REST_COLUMNS), clean_rows(ctx, "news", REST_COLUMNS, *NEWS_ALL))
    for folder in (data / "bronze" / ".staging" / "news", data / "bronze" / ".trash" / "news"):
        if folder.exists() and any(folder.iterdir()):
            result.fail(f"{folder.relative_to(data)} not cleaned")
    return result


# --------------------------------------------------------------------------------------------------- server faults


def server_faults(ctx: Context, server: Any) -> Result:
    """500/502/503, resets and truncated bodies on S3 and REST: ordinary re-runs end with a complete bronze."""
    result = Result("server faults (30% errors, 30% truncated)")
    server.faults.update(error_rate=0.3, truncate_rate=0.3)
    env = server.env()
    try:
        for dataset, args, columns in (
            ("stocks_daily", ("-s", DAYS[0], "-e", DAYS[-1], "--max-concurrent", "1"), FLAT_COLUMNS),
            ("news", NEWS_ALL, REST_COLUMNS),
        ):
            data = ctx.data_dir(f"faults-{dataset}")
            for _ in range(3):
                done = ctx.run(data, "ingest", "-t", dataset, *args, **env)
                result.runs += 1
                if done.returncode == 0:
                    break
            else:
                result.fail(f"{dataset} still failing after 3 runs")
            window = tuple(a for a in args if a not in ("--max-concurrent", "1"))
            compare(result, rows(data, dataset, columns), clean_rows(ctx, dataset, columns, *window))
        result.note = result.note or f"{server.s3_app.requests} S3 requests served with faults"
    finally:
        server.faults.reset()
    return result


# --------------------------------------------------------------------------------------------------- bad input


def _bad_variants(lines: list[str]) -> list[tuple[str, list[str] | bytes, int | None, str | None]]:
    """(name, file lines or raw bytes, expected line, expected field) for a day file's lines."""
    header = lines[0].split(",")
    row = lines[4].split(",")

    def edit(**values: str) -> list[str]:
        changed = list(row)
        for column, value in values.items():
            changed[header.index(column)] = value
        return [*lines[:4], ",".join(changed), *lines[5:]]

    price = float(row[header.index("high")])
    top = max(float(row[header.index("open")]), float(row[header.index("close")]))
    text = "\n".join(lines) + "\n"
    utf8 = "\n".join(lines[:4]).encode() + b"\n" + b"\xff" + "\n".join(lines[4:]).encode()[1:] + b"\n"
    return [
        ("negative volume", edit(volume="-10"), 5, "volume"),
        ("zero price", edit(open="0"), 5, "open"),
        ("negative price", edit(close="-1.5"), 5, "close"),
        ("high below low", edit(high=str(price / 4), low=str(price / 2)), 5, "high"),
        ("high below open/close", edit(high=str((top + float(row[header.index("low")])) / 2)), 5, "high"),
        ("low above open/close", edit(low=str(price * 1.5), high=str(price * 2)), 5, "low"),
        ("duplicated row", [*lines, lines[4]], len(lines) + 1, "window_start"),
        (
            "same key, other values",
            [*lines, lines[4].replace(row[1], str(int(float(row[1])) + 7), 1)],
            len(lines) + 1,
            "window_start",
        ),
        ("invalid UTF-8", utf8, 5, "ticker"),
        ("window_start out of session", edit(window_start="1000000000000000000"), 5, "window_start"),
        ("window_start beyond int64", edit(window_start="99999999999999999999999"), 5, "window_start"),
        ("not a number", edit(close="abc"), 5, "close"),
        ("missing field", [*lines[:4], ",".join(row[:-1]), *lines[5:]], 5, None),
        ("empty value", edit(volume=""), 5, "volume"),
        ("unexpected header column", [lines[0] + ",vwap", *(line + ",1" for line in lines[1:])], 1, "vwap"),
        ("truncated gzip", gzip.compress(text.encode())[:-40], None, None),
        ("header only", [lines[0]], 2, None),
    ]


def bad_input(ctx: Context, server: Any) -> list[Result]:
    """Each bad file replaces an already-loaded session: rejected naming line/field, every session intact."""
    from loaders.config import load_settings
    from loaders.flatfiles import LandedFile, Outcomes
    from loaders.flatfiles.commands import ingest_command, load_files, make_pipeline
    from loaders.flatfiles.settings import DATASETS
    from loaders.sandbox import flatfiles as sandbox_files

    ds = DATASETS["stocks_daily"]
    days = [dt.date.fromisoformat(d) for d in DAYS[:4]]
    clean = clean_rows(ctx, "stocks_daily", FLAT_COLUMNS, "-s", DAYS[0], "-e", DAYS[3])
    original = gzip.decompress(sandbox_files.render_file(server.market, "stocks_daily", days[1]))
    lines = original.decode().splitlines()
    results = []
    for name, body, line, column in _bad_variants(lines):
        result = Result(f"bad input: {name}", runs=2)
        data = ctx.data_dir("bad-" + name.replace(" ", "-").replace("/", "-"))
        with _environment({**ctx.env, "QM_DATA_DIR": str(data), "DLT_DATA_DIR": str(data / "dlt")}):
            code = ingest_command("stocks_daily", days[0], days[2], incremental=True, max_concurrent=2)
            if code != 0:
                result.fail(f"first load exited {code}")
            path = data / "bad.csv.gz"
            raw = body if isinstance(body, bytes) else gzip.compress(("\n".join(body) + "\n").encode())
            path.write_bytes(raw if name != "invalid UTF-8" else gzip.compress(body))  # type: ignore[arg-type]
            good = data / "good.csv.gz"
            good.write_bytes(sandbox_files.render_file(server.market, "stocks_daily", days[3]))
            settings = load_settings()
            files = [
                LandedFile(ds.key(days[1]), days[1], "etag-bad", path.stat().st_size, path),
                LandedFile(ds.key(days[3]), days[3], "etag-good", good.stat().st_size, good),
            ]
            outcomes = Outcomes()
            load_files(make_pipeline(ds, settings), ds, settings, files, outcomes)
        outcome = outcomes.by_key.get(ds.key(days[1]))
        error = outcome.error if outcome is not None else ""
        if outcome is None or outcome.status != "rejected":
            result.fail("not rejected")
        expected = (
            ds.key(days[1]) + (f", line {line}" if line else "") + (f", field {column!r}" if column else "")
        )
        if expected not in error:
            result.fail(f"error does not say {expected!r}: {error[:200]}")
        else:
            result.note = error[len(ds.key(days[1])) + 2 :][:90]
        got = rows(data, "stocks_daily", FLAT_COLUMNS)
        # the good session after it loads; the three sessions loaded before are unchanged
        got = Counter({k: v for k, v in got.items() if "etag-good" not in k})
        compare(result, got, clean)
        results.append(result)
    return results


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# --------------------------------------------------------------------------------------------------- gold


HOSTILE = [
    "../../x",
    "A/B",
    "CON",
    "con",
    "NUL",
    "nul",
    "株式",
    "ÉTÉ",
    "X" * 300,
    "ABCpA",
    "ABCPA",
    "q",
    "..",
]


def hostile_tickers(ctx: Context) -> Result:
    """Gold export of tickers Polygon could send: one safe folder each, nothing written outside the provider dir."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from loaders.gold.exporter import export_duckdb_file
    from loaders.gold.symbols import feature_dir_name
    from loaders.gold.synthetic import daily_table, write_silver

    result = Result("hostile tickers in the gold export", runs=2)
    base = ctx.data_dir("hostile")
    daily = daily_table(len(HOSTILE), dt.date(2025, 6, 2), dt.date(2025, 7, 31), seed=4)
    names = sorted(set(daily.column("ticker").to_pylist()))
    mapping = dict(zip(names, HOSTILE, strict=True))
    tickers = pa.array([mapping[t] for t in daily.column("ticker").to_pylist()], pa.string())
    daily = daily.set_column(daily.schema.get_field_index("ticker"), "ticker", tickers)
    db, root = base / "silver.duckdb", base / "gold" / "qlib"
    db.parent.mkdir(parents=True)
    first = daily.filter(pc.less(daily.column("session_date"), pa.scalar(dt.date(2025, 7, 15), pa.date32())))
    try:
        write_silver(db, first, None)
        export_duckdb_file(db, root, minute=False)
        write_silver(db, daily, None)
        stats = export_duckdb_file(db, root, minute=False)
    except Exception as exc:
        result.fail(f"export failed: {type(exc).__name__}: {exc}")
        return result
    folders = {p.name for p in (root / "features").iterdir()}
    wanted = {
        feature_dir_name(s)
        for s in (line.split("\t")[0] for line in (root / "instruments" / "all.txt").read_text().splitlines())
    }
    result.lost = len(HOSTILE) - len(folders & wanted)
    if folders != wanted or len(folders) != len(HOSTILE):
        result.fail(f"{len(folders)} folders for {len(HOSTILE)} tickers")
    outside = [
        p
        for p in base.rglob("*")
        if root not in p.parents and p != root and p.parent != base and p.parent != root.parent
    ]
    if outside:
        result.fail(f"written outside the provider dir: {outside[:3]}")
    result.note = f"{stats[0].symbols} symbols, incremental run: {stats[0].mode}"
    return result


# --------------------------------------------------------------------------------------------------- disk full


def disk_full(ctx: Context) -> Result:
    """A 20 MB tmpfs filled to the brim mid-run: one clear error, the run in the ledger, repaired once space is back."""
    result = Result("disk full (20 MB tmpfs)")
    mount = ctx.root / "tmpfs"
    mount.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        result.skipped = f"mount -t tmpfs not permitted here ({done.stderr.strip() or 'not root'})"
        return result
    try:
        data = mount / "data"
        data.mkdir()
        ballast = mount / "ballast"
        free = shutil.disk_usage(mount).free
        with open(ballast, "wb") as fh:
            fh.truncate(0)
            fh.write(b"\0" * max(0, free - (600 << 10)))
        window = ("-s", DAYS[0], "-e", "2025-10-31")
        full = ctx.run(data, "ingest", "-t", "stocks_minute", *window)
        result.runs += 1
        if full.returncode != 1:
            result.fail(f"exit {full.returncode} on a full disk")
        if "Traceback" in full.stderr or "the disk holding it is full" not in full.stderr:
            result.fail("no single clear message: " + full.stderr.strip()[-200:])
        from loaders import runs

        ballast.unlink()
        recorded = runs.read_runs(data / "runs", "stocks_minute")
        if not recorded or recorded[-1]["status"] not in ("failed", "interrupted"):
            result.fail("the failed run is not in the ledger")
        again = ctx.run(data, "ingest", "-t", "stocks_minute", *window)
        result.runs += 1
        if again.returncode != 0:
            result.fail(f"the run after freeing space exited {again.returncode}")
        compare(
            result,
            rows(data, "stocks_minute", FLAT_COLUMNS),
            clean_rows(ctx, "stocks_minute", FLAT_COLUMNS, *window),
        )
        ro = mount / "ro"
        ro.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)]).returncode == 0:
            try:
                readonly = ctx.run(ro / "data", "ingest", "-t", "news", *NEWS_FIRST)
                result.runs += 1
                if (
                    readonly.returncode != 1
                    or "read-only file system" not in readonly.stderr
                    or "Traceback" in readonly.stderr
                ):
                    result.fail("read-only data dir: " + readonly.stderr.strip()[-200:])
            finally:
                subprocess.run(["umount", str(ro)], check=False)
        result.note = "full disk and read-only data dir: one line each"
    finally:
        subprocess.run(["umount", str(mount)], check=False)
    return result


# --------------------------------------------------------------------------------------------------- concurrency


def concurrent(ctx: Context, dataset: str, args: tuple[str, ...], columns: str, tries: int = 2) -> Result:
    """Two ingests of one dataset at once: one waits out (exit 2, nothing changed) or they serialise; never a mix."""
    result = Result(f"concurrent runs of {dataset}")
    busy = 0
    for attempt in range(tries):
        data = ctx.data_dir(f"concurrent-{dataset}-{attempt}")
        env = {
            **os.environ,
            **ctx.env,
            "QM_DATA_DIR": str(data),
            "DLT_DATA_DIR": str(data / "dlt"),
            "PYTHONPATH": str(REPO),
        }
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "loaders.cli", "ingest", "-t", dataset, *args],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        codes = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            ctx.outputs.append(out + err)
            codes.append(proc.returncode)
        result.runs += 2
        busy += codes.count(2)
        if any(c not in (0, 2) for c in codes) or 0 not in codes:
            result.fail(f"exit codes {codes}")
        again = ctx.run(data, "ingest", "-t", dataset, *args)
        result.runs += 1
        if again.returncode != 0:
            result.fail(f"follow-up run exited {again.returncode}")
        compare(result, rows(data, dataset, columns), clean_rows(ctx, dataset, columns, *args))
    result.note = result.note or f"{busy} of {2 * tries} runs found the dataset busy"
    return result


# --------------------------------------------------------------------------------------------------- secrets


def canary(ctx: Context) -> Result:
    """The REST key and S3 secret never appear in any file written or any output printed by the trials."""
    result = Result("canary secrets searched everywhere", runs=1)
    hits = []
    needles = [CANARY_REST.encode(), CANARY_S3.encode()]
    files = 0
    for path in ctx.root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            files += 1
            with contextlib.suppress(OSError):
                data = path.read_bytes()
                hits.extend(str(path.relative_to(ctx.root)) for n in needles if n in data)
    for text in ctx.outputs:
        hits.extend("command output" for n in (CANARY_REST, CANARY_S3) if n in text)
    if hits:
        result.fail(f"found in {sorted(set(hits))[:5]}")
    result.note = f"{files} files and the output of {len(ctx.outputs)} commands searched"
    return result


# --------------------------------------------------------------------------------------------------- main


def run_suite(root: Path | None = None, workers: int = 2) -> list[Result]:
    from loaders.sandbox.market import MarketConfig
    from loaders.sandbox.server import SandboxServer

    config = MarketConfig(
        seed=7,
        start=dt.date(2025, 10, 1),
        end=dt.date(2025, 12, 31),
        today=dt.date(2025, 12, 19),
        tickers=12,
        option_underlyings=3,
        contracts_per_underlying=24,
        minute=True,
    )
    owned = root is None
    root = Path(root or tempfile.mkdtemp(prefix="quantmini-chaos-"))
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (
        SandboxServer(
            config, rest_port=0, s3_port=0, api_key=CANARY_REST, s3_secret_access_key=CANARY_S3
        ) as server,
        SandboxServer(
            config, rest_port=0, s3_port=0, api_key=CANARY_REST, s3_secret_access_key=CANARY_S3
        ) as faulty,
    ):
        ctx = Context(root, server.env())
        jobs: list[Callable[[], Result | list[Result]]] = []
        jobs += [lambda p=p, n=n: kill_flatfile(ctx, "stocks_daily", p, n) for p, n in FLAT_PHASES]
        jobs += [
            lambda p=p, n=n: kill_flatfile(ctx, "options_daily", p, n)
            for p, n in (("normalize-commit", 1), ("load-job", 1), ("swap", 2))
        ]
        jobs += [
            lambda p=p, n=n: kill_flatfile(ctx, "stocks_minute", p, n, days=4)
            for p, n in (("parse", 3), ("swap", 2))
        ]
        jobs += [lambda p=p, n=n: kill_rest(ctx, p, n) for p, n in REST_PHASES]
        jobs += [
            lambda: concurrent(ctx, "news", NEWS_ALL, REST_COLUMNS),
            lambda: concurrent(ctx, "stocks_daily", ("-s", DAYS[0], "-e", DAYS[-1]), FLAT_COLUMNS),
        ]
        results: list[Result] = []
        # clean references first (shared by the trials), then the trials two at a time
        clean_rows(ctx, "news", REST_COLUMNS, *NEWS_ALL)
        for dataset, last in (("stocks_daily", 5), ("options_daily", 5), ("stocks_minute", 3)):
            clean_rows(ctx, dataset, FLAT_COLUMNS, "-s", DAYS[0], "-e", DAYS[last])
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for found in pool.map(lambda job: job(), jobs):
                results.extend(found if isinstance(found, list) else [found])
                _progress(results[-1])
        for job in (
            lambda: server_faults(ctx, faulty),
            lambda: bad_input(ctx, server),
            lambda: hostile_tickers(ctx),
            lambda: disk_full(ctx),
        ):
            found = job()
            for item in found if isinstance(found, list) else [found]:
                results.append(item)
                _progress(item)
        results.append(canary(ctx))
    elapsed = time.monotonic() - started
    print_table(results, elapsed)
    if owned:
        shutil.rmtree(root, ignore_errors=True)
    return results


def _progress(result: Result) -> None:
    mark = "skip" if result.skipped else ("ok" if result.passed else "FAIL")
    print(f"  {mark:4} {result.trial}", file=sys.stderr, flush=True)


def print_table(results: list[Result], elapsed: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"make chaos: {len(results)} trials in {elapsed / 60:.1f} min", title_justify="left")
    for name in ("trial", "runs", "passed", "rows lost", "rows duplicated", "note"):
        table.add_column(
            name,
            justify="right" if name in ("runs", "rows lost", "rows duplicated") else "left",
            overflow="fold",
        )
    for r in results:
        passed = "skipped" if r.skipped else ("yes" if r.passed else "NO")
        table.add_row(r.trial, str(r.runs), passed, str(r.lost), str(r.duplicated), r.skipped or r.note)
    console = Console(width=160)
    console.print(table)
    ok = sum(r.passed and not r.skipped for r in results)
    console.print(
        f"{ok} of {len(results)} trials passed, {sum(bool(r.skipped) for r in results)} skipped; "
        f"{sum(r.runs for r in results)} runs, {sum(r.lost for r in results)} rows lost, "
        f"{sum(r.duplicated for r in results)} rows duplicated"
    )


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--keep", type=Path, help="run in this folder and keep it (default: a temporary folder)"
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    results = run_suite(args.keep)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 0 if all(r.passed for r in results) else 1
