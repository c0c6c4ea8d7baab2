"""The flat-file benchmark runs end to end at a tiny scale and reports every number (not timings)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_reports_every_case_and_ratio_at_a_tiny_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))  # `bench` is a top-level folder, not an installed package
    from bench import bench_flatfiles

    monkeypatch.setenv("QM_BENCH_SCALE", "0.002")
    monkeypatch.setenv("QM_BENCH_REPEAT", "1")
    monkeypatch.delenv("QM_BENCH_DIR", raising=False)
    monkeypatch.delenv("QM_BENCH_DATASETS", raising=False)
    result = bench_flatfiles.run()
    cases = {(r["dataset"], r["case"]): r for r in result["rows"]}
    assert set(cases) == {(d, c) for d in ("stocks_minute", "options_daily") for c in bench_flatfiles.CASES}
    for dataset in ("stocks_minute", "options_daily"):
        rows = {cases[(dataset, c)]["rows"] for c in bench_flatfiles.CASES}
        assert rows == {result[f"{dataset}_rows"]} and result[f"{dataset}_rows"] > 1000
        for case in bench_flatfiles.CASES:
            row = cases[(dataset, case)]
            for field in ("seconds", "rows/s", "csv_MB/s", "gz_MB/s", "rss_MiB", "vs_pyarrow"):
                assert row[field] > 0 and math.isfinite(row[field]), (dataset, case, field)
            assert row["cpu_s"] >= 0  # a tiny gzip run can take less than the clock's resolution
        for ratio in ("ours_vs_pyarrow", "ours_vs_duckdb", "ours_vs_gzip", "ours_peak_rss_mb"):
            assert result[f"{dataset}_{ratio}"] > 0
        assert isinstance(result[f"{dataset}_meets_target"], bool)
    assert result["small_files_sessions"] == 5 and result["small_files_rows"] > 5 * 50
    for field in ("seconds", "ms_per_session", "peak_rss_mb"):
        assert result[f"small_files_{field}"] > 0, field
