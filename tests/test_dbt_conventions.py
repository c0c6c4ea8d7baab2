"""The dbt project follows dbt-project-evaluator's rules as dbt-bouncer.yml configures them (`make lint`).

dbt-bouncer reads the manifest `dbt parse` writes; these tests run it on a fresh parse, and on a manifest
with a rule broken on purpose to prove the configuration really checks what it says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dbt_fixtures import REPO_ROOT, run_dbt

pytestmark = pytest.mark.xdist_group("dbt_conventions")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("conventions")
    run_dbt(["parse"], work / "data", work)
    return work / "target" / "manifest.json"


def _bouncer(artifacts: Path, work: Path) -> tuple[int, list[dict]]:
    config = yaml.safe_load((REPO_ROOT / "dbt-bouncer.yml").read_text())
    config["dbt_artifacts_dir"] = str(artifacts)
    config_file = work / "dbt-bouncer.yml"
    config_file.write_text(yaml.safe_dump(config))
    results = work / "results.json"
    proc = subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt-bouncer")),
            "run",
            "--config-file",
            str(config_file),
            "--output-file",
            str(results),
            "--output-format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        timeout=600,
    )
    assert results.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.returncode, [r for r in json.loads(results.read_text()) if r["outcome"] != "success"]


def test_the_project_passes_every_configured_rule(manifest: Path, tmp_path: Path) -> None:
    code, failures = _bouncer(manifest.parent, tmp_path)
    assert failures == []
    assert code == 0


def test_an_undocumented_macro_and_a_model_without_a_key_test_fail(manifest: Path, tmp_path: Path) -> None:
    broken = json.loads(manifest.read_text())
    broken["macros"]["macro.quantmini.bronze_source"]["description"] = ""
    model = "model.quantmini.stg_polygon__splits"
    for unique_id, node in list(broken["nodes"].items()):
        if node.get("resource_type") == "test" and node.get("attached_node") == model:
            del broken["nodes"][unique_id]
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    (artifacts / "manifest.json").write_text(json.dumps(broken))
    code, failures = _bouncer(artifacts, tmp_path)
    assert code != 0
    failed = {(r["check_run_id"].split(":")[0], r["check_run_id"].rsplit(":", 1)[-1]) for r in failures}
    assert ("check_macro_description_populated", "bronze_source") in failed
    assert ("check_model_has_unique_test", "stg_polygon__splits") in failed
