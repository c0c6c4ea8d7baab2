"""The GitHub workflows (scheduled refresh, tests on push): valid against GitHub's workflow schema and
wired to the right commands.

The schema check uses check-jsonschema's vendored copy of the GitHub workflow schema, so it runs offline.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from test_ops_support import write_bronze

WORKFLOWS = Path(__file__).resolve().parents[1] / ".github" / "workflows"
WORKFLOW = WORKFLOWS / "refresh.yml"
TESTS_WORKFLOW = WORKFLOWS / "tests.yml"


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflows_are_valid_against_githubs_schema() -> None:
    for workflow in (WORKFLOW, TESTS_WORKFLOW):
        proc = _check(workflow)
        assert proc.returncode == 0, f"{workflow.name}: {proc.stdout}{proc.stderr}"


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    proc = _check(broken)
    assert proc.returncode != 0
    assert "runs-on" in proc.stdout


def _triggers(doc: dict) -> dict:
    return doc[True] if True in doc else doc["on"]  # YAML 1.1 reads a bare `on` as true


def test_refresh_pulls_the_lake_bootstraps_an_empty_one_and_pushes_it_never_via_the_cache() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    triggers = _triggers(doc)
    crons = [entry["cron"] for entry in triggers["schedule"]]
    assert "30 11 * * 2-6" in crons and "workflow_dispatch" in triggers
    job = doc["jobs"]["refresh"]
    env = job["env"]
    for name in (
        "POLYGON_API_KEY",
        "POLYGON_S3_ACCESS_KEY_ID",
        "POLYGON_S3_SECRET_ACCESS_KEY",
        "QM_LAKE_S3_BUCKET",
        "QM_LAKE_S3_ACCESS_KEY_ID",
        "QM_LAKE_S3_SECRET_ACCESS_KEY",
    ):
        assert env[name] == f"${{{{ secrets.{name} }}}}"
    assert env["QM_DATA_DIR"].endswith("/data") and env["DLT_DATA_DIR"].endswith("/data/dlt")
    assert "'daily'" in env["MODE"]
    assert "bootstrap_history" in triggers["workflow_dispatch"]["inputs"]
    assert (
        "inputs.bootstrap_history" in env["BOOTSTRAP_HISTORY"]
        and "vars.QM_BOOTSTRAP_HISTORY" in env["BOOTSTRAP_HISTORY"]
    )

    steps = job["steps"]
    assert not [s for s in steps if str(s.get("uses", "")).startswith("actions/cache")], "no Actions cache"
    order = [step.get("run", "") for step in steps]

    def index(text: str) -> int:
        return next(i for i, run in enumerate(order) if text in run)

    pull, bulk, refresh, push = (
        index("quantmini lake pull"),
        index("quantmini bulk"),
        index('quantmini refresh "$MODE"'),
        index("quantmini lake push"),
    )
    assert pull < bulk < refresh < push
    bootstrap = order[bulk]
    assert "status --json" in bootstrap and "--history" in bootstrap and "$BOOTSTRAP_HISTORY" in bootstrap
    push_step = steps[push]
    assert "always()" in push_step["if"] and "steps.pull.outcome == 'success'" in push_step["if"]
    assert steps[pull]["id"] == "pull"


def test_bootstrap_step_detects_an_empty_lake_from_status_json(tmp_path: Path) -> None:
    """The bootstrap condition, run as the workflow runs it, on an empty and on a loaded data dir."""
    doc = yaml.safe_load(WORKFLOW.read_text())
    script = next(s["run"] for s in doc["jobs"]["refresh"]["steps"] if "quantmini bulk" in s.get("run", ""))
    condition = (
        re.search(r"if (.+?); then", script)
        .group(1)
        .replace(".venv/bin/quantmini", f"{sys.executable} -m loaders.cli")
    )
    env = {**os.environ, "QM_DATA_DIR": str(tmp_path / "data")}
    assert subprocess.run(["bash", "-c", condition], env=env, timeout=120).returncode == 1  # empty: bootstrap
    write_bronze(tmp_path / "data", "stocks_daily", [dt.date(2025, 1, 2)])
    assert subprocess.run(["bash", "-c", condition], env=env, timeout=120).returncode == 0  # loaded: skip


def test_tests_workflow_runs_ci_on_push_and_pull_requests() -> None:
    doc = yaml.safe_load(TESTS_WORKFLOW.read_text())
    triggers = _triggers(doc)
    assert "push" in triggers and "pull_request" in triggers
    job = doc["jobs"]["test"]
    assert job["timeout-minutes"] <= 90
    assert any(step.get("run") == ".ci/run" for step in job["steps"])
