"""The scheduled refresh workflow: valid against GitHub's workflow schema and wired to the right command.

The schema check uses check-jsonschema's vendored copy of the GitHub workflow schema, so it runs offline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "refresh.yml"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflow_is_valid_against_githubs_schema() -> None:
    proc = _check(WORKFLOW)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    proc = _check(broken)
    assert proc.returncode != 0
    assert "runs-on" in proc.stdout


def test_workflow_runs_the_daily_refresh_with_secrets_and_a_cached_data_dir() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    triggers = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads a bare `on` as true
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert "30 11 * * 2-6" in crons and "workflow_dispatch" in triggers
    job = doc["jobs"]["refresh"]
    env = job["env"]
    for name in ("POLYGON_API_KEY", "POLYGON_S3_ACCESS_KEY_ID", "POLYGON_S3_SECRET_ACCESS_KEY"):
        assert env[name] == f"${{{{ secrets.{name} }}}}"
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert 'quantmini refresh "$MODE"' in runs
    assert "'daily'" in env["MODE"]
    caches = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache/")]
    assert {s["with"]["path"] for s in caches} == {"data"}
    assert env["QM_DATA_DIR"].endswith("/data")
