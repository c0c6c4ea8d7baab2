"""The gold benchmark runs tiny and proves the baseline and the exporter write the same bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_gold_tiny_run_reports_ratio_and_identical_bytes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # `bench` is a top-level folder, not an installed package
    from bench import bench_gold

    monkeypatch.setenv("QM_BENCH_GOLD_TICKERS", "12")
    monkeypatch.setenv("QM_BENCH_GOLD_YEARS", "0.3")
    monkeypatch.setenv("QM_BENCH_GOLD_DIR", str(tmp_path))
    monkeypatch.setenv("QM_BENCH_GOLD_REPEATS", "2")
    result = bench_gold.run()
    assert result["byte_identical"] is True
    assert result["repeats"] == 2 and len(result["rows"]) == 5
    # the floors (read alone, file creation alone) are parts of the export, so they bound its speed-up
    assert result["floor_speedup_cpu"] >= result["speedup_cpu"] * 0.5
    from loaders.gold.exporter import DAILY_FIELDS, DEFAULT_FEATURES

    assert result["feature_files"] == 12 * (len(DAILY_FIELDS) + len(DEFAULT_FEATURES))
    assert result["baseline_seconds"] > 0 and result["export_seconds"] > 0
    assert result["speedup"] == pytest.approx(result["baseline_seconds"] / result["export_seconds"], rel=0.05)
    assert not list(tmp_path.iterdir())  # the work dir is cleaned up
