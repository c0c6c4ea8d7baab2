"""loaders/datasets.py is the one list of datasets: everything that names datasets is built from it."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import typer
import yaml

from loaders import calendar, cli, rest
from loaders import datasets as registry
from loaders.config import load_settings
from loaders.flatfiles import settings as ff
from loaders.ops import bulk, status
from loaders.rest import settings as rest_settings
from loaders.sandbox import flatfiles
from loaders.sandbox.server import SandboxServer

ROOT = Path(__file__).resolve().parents[1]


def _dataset_options() -> list[str]:
    """`command parameter` for every CLI parameter whose values are datasets (typed with the `-t` enum)."""
    found: list[str] = []

    def walk(typer_app: typer.Typer, path: str) -> None:
        for command in typer_app.registered_commands:
            hints = typing.get_type_hints(command.callback)
            for param, hint in hints.items():
                if cli.Dataset in _leaves(hint):
                    found.append(f"{path}{command.name or command.callback.__name__} {param}")
        for group in typer_app.registered_groups:
            walk(group.typer_instance, f"{path}{group.name} ")

    walk(cli.app, "")
    return found


def _leaves(hint: Any) -> set[Any]:
    args = typing.get_args(hint)
    return {hint} if not args else set().union(*(_leaves(a) for a in args))


def test_cli_dataset_choices_are_the_registry() -> None:
    assert [d.value for d in cli.Dataset] == list(registry.NAMES)
    options = _dataset_options()
    # ingest, gaps, backfill, refresh, bulk (-t and --skip), status, report, validate, retry-failed
    assert len(options) >= 8, options
    assert any(o.startswith("ingest ") for o in options), options


def test_both_sources_settings_cover_every_entry() -> None:
    assert list(ff.DATASETS) == list(registry.FLATFILE_DATASETS)
    assert list(rest_settings.DATASETS) == list(registry.REST_DATASETS)
    assert set(ff.DATASETS) | set(rest_settings.DATASETS) == set(registry.NAMES)
    for name, entry in {**ff.DATASETS, **rest_settings.DATASETS}.items():
        assert entry is registry.DATASETS[name], name
    # every REST entry has its loading code, and no loading code lacks an entry
    assert set(rest.RESOURCES) == set(registry.REST_DATASETS)
    assert ff.PARTITION_COLUMN == registry.SESSION_PARTITION
    for name in registry.FLATFILE_DATASETS:
        key = ff.DATASETS[name].key(dt.date(2025, 10, 17))
        assert ff.KEY_DATE.search(key), key


def test_sandbox_serves_every_flatfile_dataset(sandbox: SandboxServer) -> None:
    env = sandbox.env()
    s3 = boto3.client(
        "s3",
        endpoint_url=env["POLYGON_S3_ENDPOINT"],
        aws_access_key_id=env["POLYGON_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["POLYGON_S3_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    day = sandbox.market.served_sessions()[-2]
    assert set(flatfiles.PREFIXES) == set(registry.FLATFILE_DATASETS)
    for name in registry.FLATFILE_DATASETS:
        entry = registry.spec(name)
        key = entry.key(day)
        assert flatfiles.key_for(name, day) == key
        assert flatfiles.parse_key(key) == (name, day)
        month = f"{entry.s3_prefix}/{day:%Y}/{day:%m}/"
        listed = [
            o["Key"] for o in s3.list_objects_v2(Bucket=env["POLYGON_S3_BUCKET"], Prefix=month)["Contents"]
        ]
        assert key in listed, name
        body = s3.get_object(Bucket=env["POLYGON_S3_BUCKET"], Key=key)["Body"].read()
        lines = gzip.decompress(body).decode().splitlines()
        assert lines[0] == flatfiles.HEADER and len(lines) > 1, name


def test_sandbox_answers_every_rest_endpoint(sandbox: SandboxServer) -> None:
    env = sandbox.env()
    ticker = sandbox.market.tickers()[0]["ticker"]
    for name in registry.REST_DATASETS:
        endpoint = rest_settings.endpoint(name)
        path = endpoint.path.format(ticker=ticker)
        reply = httpx.get(
            f"{env['POLYGON_API_URL']}{path}", params={"apiKey": env["POLYGON_API_KEY"]}, timeout=30
        )
        assert reply.status_code == 200, (name, path, reply.text[:200])
        assert reply.json(), name


def _dbt_source_locations() -> list[str]:
    locations: list[str] = []
    for path in ROOT.joinpath("models").rglob("*.yml"):
        doc: Any = yaml.safe_load(path.read_text()) or {}
        for source in doc.get("sources") or []:
            for table in source.get("tables") or []:
                meta = {**(table.get("meta") or {}), **((table.get("config") or {}).get("meta") or {})}
                if "location" in meta:
                    locations.append(meta["location"])
    return locations


def test_dbt_reads_every_bronze_table_and_the_silver_relations_exist() -> None:
    locations = _dbt_source_locations()
    models = {p.stem for p in ROOT.joinpath("models").rglob("*.sql")}
    for entry in registry.DATASETS.values():
        for table in entry.tables:
            folder = f"/bronze/{entry.table_dir(table)}/"
            assert any(folder in loc and loc.split(folder)[1].count("/") <= 2 for loc in locations), (
                f"{entry.name}.{table.name}: no dbt source reads {folder}"
            )
        for relation in entry.silver_relations:
            assert relation in models, f"{entry.name}: silver relation {relation} is not a dbt model"


def test_ops_commands_list_every_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QM_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert [s.dataset for s in status.collect(settings)] == list(registry.NAMES)
    plan = bulk.plan_bulk(settings, list(registry.NAMES), {}, dt.date(2025, 12, 31), probe=False)
    order = [item.dataset for item in plan]
    assert sorted(order) == sorted(registry.NAMES)
    assert order[:2] == ["tickers", "market_holidays"]  # reference data first
    for entry in registry.DATASETS.values():
        assert all(order.index(r) < order.index(entry.name) for r in entry.requires), entry.name


def test_registry_order_is_a_load_order_and_entries_are_checked() -> None:
    for position, name in enumerate(registry.NAMES):
        assert set(registry.spec(name).requires) <= set(registry.NAMES[:position]), name
    assert registry.feeding_gold("day") == "stocks_daily"
    assert registry.feeding_gold("1min") == "stocks_minute"
    with pytest.raises(ValueError, match="unknown dataset 'stonks'; expected one of: stocks_daily"):
        registry.spec("stonks")
    daily = registry.spec("stocks_daily")
    with pytest.raises(ValueError, match="needs s3_prefix and market_table"):
        dataclasses.replace(daily, s3_prefix=None)
    with pytest.raises(ValueError, match="needs an endpoint"):
        dataclasses.replace(registry.spec("news"), endpoint=None)
    with pytest.raises(ValueError, match="not a flat-file dataset"):
        registry.spec("news").key(dt.date(2025, 1, 2))


def _docstrings(tree: ast.AST) -> set[int]:
    out: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            out.add(id(first.value))
    return out


# Literal collections of dataset names that are not lists of datasets: the REST loading code keyed by
# dataset (checked against the registry above) and the companions of `--include-short-data`.
ALLOWED_LISTS = {"RESOURCES", "SHORT_DATA"}


def test_no_other_module_lists_datasets_or_spells_a_flat_file_prefix() -> None:
    names = set(registry.NAMES)
    prefixes = [str(registry.spec(n).s3_prefix) for n in registry.FLATFILE_DATASETS]
    offenders: list[str] = []
    for path in sorted(ROOT.joinpath("loaders").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "loaders/datasets.py":
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree)
        allowed: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if any(isinstance(t, ast.Name) and t.id in ALLOWED_LISTS for t in targets):
                    allowed.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) and id(node) not in allowed:
                elements = node.keys if isinstance(node, ast.Dict) else node.elts
                listed = {e.value for e in elements if isinstance(e, ast.Constant) and e.value in names}
                if len(listed) >= 2:
                    offenders.append(f"{rel}:{node.lineno} lists {sorted(listed)}")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                offenders += [f"{rel}:{node.lineno} spells {p}" for p in prefixes if p in node.value]
    assert not offenders, "datasets belong in loaders/datasets.py:\n" + "\n".join(offenders)


NEW_ENTRY = """    _flatfile(
        "stocks_daily_copy",
        "us_stocks_sip/day_aggs_copy_v1",
        "stock_day_aggs",
        history="1y",
        cadence="daily",
    ),
"""
NEW_ENTRY_RUN = """
import json, os, sys
from typer.testing import CliRunner
from loaders.cli import app
from loaders.sandbox.market import MarketConfig
from loaders.sandbox.server import SandboxServer
import datetime as dt

config = MarketConfig(seed=3, start=dt.date(2025, 1, 2), end=dt.date(2025, 1, 31), tickers=5, minute=False)
with SandboxServer(config, host="127.0.0.1", rest_port=0, s3_port=0) as server:
    os.environ.update(server.env())
    runner = CliRunner()
    out = {}
    for name, argv in {
        "ingest": ["ingest", "-t", "stocks_daily_copy", "-s", "2025-01-02", "-e", "2025-01-10"],
        "status": ["status"],
        "gaps": ["gaps", "-t", "stocks_daily_copy"],
    }.items():
        result = runner.invoke(app, argv, catch_exceptions=False)
        out[name] = [result.exit_code, result.output]
print(json.dumps(out))
"""


def test_one_new_entry_is_served_ingested_and_operated(tmp_path: Path) -> None:
    """A copy of the code with one more registry entry (nothing else edited) serves, loads and reports it."""
    code = tmp_path / "code"
    shutil.copytree(ROOT / "loaders", code / "loaders", ignore=shutil.ignore_patterns("__pycache__"))
    registry_file = code / "loaders" / "datasets.py"
    source = registry_file.read_text()
    assert source.count("_ENTRIES = (\n") == 1
    registry_file.write_text(source.replace("_ENTRIES = (\n", "_ENTRIES = (\n" + NEW_ENTRY))
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POLYGON_", "MASSIVE_", "DLT_", "QM_"))}
    env.update(PYTHONPATH=str(code), QM_DATA_DIR=str(data), DLT_DATA_DIR=str(data / "dlt"), COLUMNS="200")
    done = subprocess.run(
        [sys.executable, "-c", NEW_ENTRY_RUN], cwd=code, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ingest"][0] == 0, out["ingest"][1][-2000:]
    sessions = sorted(p.name for p in (data / "bronze" / "stocks_daily_copy").glob("session_date=*"))
    assert sessions == [
        f"session_date={d}" for d in calendar.sessions(dt.date(2025, 1, 2), dt.date(2025, 1, 10))
    ]
    assert list((data / "landing" / "flatfiles" / "us_stocks_sip" / "day_aggs_copy_v1").rglob("*.csv.gz"))
    assert out["status"][0] == 0 and "stocks_daily_copy" in out["status"][1], out["status"][1]
    assert out["gaps"][0] == 0, out["gaps"][1]
