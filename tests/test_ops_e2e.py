"""End to end on a private sandbox: a year's initial load, five daily refreshes with the sandbox clock
advanced a day each time, a session deleted from bronze, `gaps` finds exactly it, `backfill --gaps-file`
repairs it, `validate` is clean, and gold equals a clean rebuild from the same bronze, byte for byte."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from loaders import calendar
from loaders.cli import app
from loaders.sandbox.market import MarketConfig
from loaders.sandbox.server import SandboxServer

pytestmark = pytest.mark.slow

START = dt.date(2024, 12, 2)
TODAY = dt.date(2025, 12, 1)  # the clock at the initial load; one year of sessions behind it
CONFIG = MarketConfig(
    seed=11,
    start=START,
    end=dt.date(2025, 12, 31),
    today=TODAY,
    tickers=8,
    option_underlyings=1,
    contracts_per_underlying=4,
    minute=False,
)
DATASETS = ["-t", "stocks_daily", "-t", "splits", "-t", "dividends"]
# build only the models gold needs (the full project's build is covered by the silver tests); this keeps
# eight builds to seconds each on a 2-core machine
SELECT = ["--dbt-select", "+qlib_export"]


@pytest.fixture()
def market(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    """A sandbox of our own: the test moves its clock, which the shared one must not see."""
    with SandboxServer(CONFIG, host="127.0.0.1", rest_port=0, s3_port=0) as server:
        data_dir = tmp_path / "data"
        env = {**server.env(), "QM_DATA_DIR": str(data_dir), "DLT_DATA_DIR": str(data_dir / "dlt")}
        monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield server


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _files(root: Path) -> dict[str, bytes]:
    """Every file's bytes; the gold manifest without its per-ticker write tokens, which change whenever a
    ticker's files are written whole, and the newest `built_at` it consumed, the start of the dbt run
    that wrote it (so an incremental and a clean export differ there by design)."""
    out = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    if ".quantmini-manifest.json" in out:
        manifest = json.loads(out[".quantmini-manifest.json"])
        for freq in manifest.values():
            if isinstance(freq, dict):
                freq.pop("built_at", None)
            for entry in freq.get("symbols", {}).values() if isinstance(freq, dict) else []:
                entry.pop("token", None)
        out[".quantmini-manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    return out


def test_initial_load_daily_refreshes_gap_repair_and_clean_rebuild(
    market: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    bronze = data_dir / "bronze" / "stocks_daily"

    code, out = _cli("bulk", *DATASETS, "--history", "stocks_daily=1y", "--parallel", "2")
    assert code == 0, out
    year = calendar.sessions(START, TODAY)
    assert len(year) >= 250
    assert sorted(p.name for p in bronze.iterdir()) == [f"session_date={d}" for d in year]

    code, out = _cli("refresh", "daily", *SELECT)
    assert code == 0, out

    for _ in range(5):
        httpx.post(f"{market.rest_url}/_sandbox/advance", params={"days": 1}, timeout=30).raise_for_status()
        code, out = _cli("refresh", "daily", *SELECT)
        assert code == 0, out
    served = calendar.sessions(START, market.market.today)
    assert len(served) == len(year) + 5
    assert sorted(p.name for p in bronze.iterdir()) == [f"session_date={d}" for d in served]
    gold_days = (data_dir / "gold" / "qlib" / "calendars" / "day.txt").read_text().split()
    assert gold_days[-1] == served[-1].isoformat()

    victim = served[100]
    shutil.rmtree(bronze / f"session_date={victim}")
    gaps_file = tmp_path / "gaps.json"
    code, out = _cli("gaps", "-t", "stocks_daily", "--json", str(gaps_file))
    assert code == 0, out
    entry = json.loads(gaps_file.read_text())["datasets"]["stocks_daily"]
    assert entry["sessions_missing"] == 1
    assert entry["missing"] == [
        {"start": str(victim), "end": str(victim), "sessions": 1, "dates": [str(victim)]}
    ]
    assert entry["weekend_days"] > 100 and any(h["name"] == "Thanksgiving" for h in entry["holidays"])

    code, out = _cli("backfill", "--gaps-file", str(gaps_file), *SELECT)
    assert code == 0, out
    code, out = _cli("gaps", "-t", "stocks_daily", "--fail-on-gaps")
    assert code == 0, out
    code, out = _cli("validate")
    assert code == 0, out
    code, out = _cli("status", "--json")
    status = {row["dataset"]: row for row in json.loads(out)}
    assert status["stocks_daily"]["sessions_missing"] == 0
    assert status["stocks_daily"]["last_session"] == str(served[-1])

    # a clean rebuild: the same bronze, a fresh silver and gold
    clean = tmp_path / "clean"
    shutil.copytree(data_dir / "bronze", clean / "bronze")
    monkeypatch.setenv("QM_DATA_DIR", str(clean))
    monkeypatch.setenv("DLT_DATA_DIR", str(clean / "dlt"))
    from loaders.config import load_settings
    from loaders.ops import runner

    outcome = runner.build_downstream(load_settings(), minute=False, select=SELECT[1])
    assert outcome.ok, (outcome.dbt.message, outcome.dbt.failures, outcome.gold_code)
    incremental_gold = _files(data_dir / "gold" / "qlib")
    clean_gold = _files(clean / "gold" / "qlib")
    assert sorted(incremental_gold) == sorted(clean_gold)
    differ = [name for name in clean_gold if clean_gold[name] != incremental_gold[name]]
    assert differ == []
