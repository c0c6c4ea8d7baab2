"""`dbt build` runs the gold export: the qlib_export Python model writes the provider dir and a summary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from loaders.gold.synthetic import daily_table, minute_table, write_silver

ROOT = Path(__file__).resolve().parents[1]


def _dbt(args: list[str], tmp_path: Path) -> object:
    from dbt.cli.main import dbtRunner

    result = dbtRunner().invoke(
        [
            *args,
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(ROOT),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
            "--quiet",
        ]
    )
    assert result.success, result.exception
    return result.result


def _summary(tmp_path: Path, columns: str) -> list[tuple]:
    """Rows of the summary model, read through dbt (its in-process DuckDB connection stays open)."""
    shown = _dbt(
        ["show", "--inline", f"select {columns} from {{{{ ref('qlib_export') }}}} order by freq"], tmp_path
    )
    return [tuple(row) for row in shown.results[0].agate_table.rows]


@pytest.mark.slow
def test_dbt_build_of_the_gold_model_exports_qlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QM_QLIB_FEATURES", "return_1d")
    daily = daily_table(6, dt.date(2024, 3, 1), dt.date(2024, 4, 30), seed=2)
    minute = minute_table(daily, [dt.date(2024, 4, 29), dt.date(2024, 4, 30)], ["CON", "AUX", "BRK.B"])
    # the marts as dbt names them: marts in main, staging in main_staging
    write_silver(tmp_path / "quantmini.duckdb", daily, minute)

    _dbt(["build", "--select", "qlib_export"], tmp_path)

    root = tmp_path / "gold" / "qlib"
    assert (root / "calendars" / "day.txt").read_text().splitlines()[0] == "2024-03-01"
    assert len((root / "calendars" / "1min.txt").read_text().splitlines()) == 2 * 390
    assert (root / "features" / "_qlib_con" / "return_1d.day.bin").exists()
    assert not (root / "features" / "_qlib_con" / "rsi_14.day.bin").exists()
    rows = _summary(tmp_path, "freq, export_mode, symbols, symbols_written")
    minute_tickers = len(set(minute.column("ticker").to_pylist()))
    assert minute_tickers >= 1
    assert rows == [("1min", "full", minute_tickers, minute_tickers), ("day", "full", 6, 6)]

    # a second build is incremental and writes nothing
    _dbt(["build", "--select", "qlib_export"], tmp_path)
    rows = _summary(tmp_path, "freq, export_mode, files_written")
    assert rows == [("1min", "incremental", 0), ("day", "incremental", 0)]
