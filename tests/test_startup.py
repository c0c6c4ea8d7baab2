"""Process start-up: `quantmini --help` imports no heavy library, and installed bytecode is compiled.

These machines set PYTHONDONTWRITEBYTECODE=1, so a module without compiled bytecode is compiled again by
every process that imports it; `make install` compiles site-packages and the project's sources.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("dlt", "duckdb", "pyarrow", "pandas", "numpy", "exchange_calendars", "dbt", "httpx", "qlib")


def _modules_after(argv: list[str]) -> set[str]:
    code = (
        "import json, sys\n"
        "from loaders.cli import app\n"
        f"sys.argv = {['quantmini', *argv]!r}\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["ingest", "--help"], ["export", "qlib", "--help"]])
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    loaded = _modules_after(argv)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert not heavy, f"`quantmini {' '.join(argv)}` imported {heavy[:10]}"


@pytest.mark.skipif(
    not os.environ.get("VIRTUAL_ENV") and sys.prefix == sys.base_prefix, reason="needs the project venv"
)
@pytest.mark.parametrize("module", ["typer", "duckdb", "dlt", "pyarrow", "loaders.cli"])
def test_installed_modules_have_compiled_bytecode(module: str) -> None:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin and spec.origin.endswith(".py")
    cached = Path(importlib.util.cache_from_source(spec.origin))
    assert cached.is_file(), f"{module}: no bytecode at {cached}; run `make install`"


def test_duckdb_connections_spill_inside_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sort larger than the memory limit completes by spilling to `<data dir>/duckdb_tmp`."""
    import duckdb

    from loaders.config import duckdb_config

    monkeypatch.setenv("QM_DUCKDB_MEMORY_LIMIT", "64MB")
    monkeypatch.setenv("QM_DUCKDB_THREADS", "1")
    con = duckdb.connect(config=duckdb_config(tmp_path))
    assert con.execute("select current_setting('temp_directory')").fetchone()[0] == str(
        tmp_path / "duckdb_tmp"
    )
    rows = con.execute(
        "select count(*), count(distinct h) from (select hash(i) as h, i::varchar || repeat('x', 40) as s "
        "from range(3000000) t(i) order by s)"
    ).fetchone()
    assert rows == (3_000_000, 3_000_000)
