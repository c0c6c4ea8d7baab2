"""Shared fixtures: a small sandbox market, a running sandbox per test worker, and its environment.

Under pytest-xdist every worker gets its own session-scoped sandbox on free ports.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from loaders.sandbox.faults import Faults
from loaders.sandbox.market import MarketConfig
from loaders.sandbox.server import SandboxServer

# ~3 months with Thanksgiving (holiday + half day), Christmas Eve (half day) and Christmas; the clock
# starts a few sessions before the end so tests can advance it.
SANDBOX_CONFIG = MarketConfig(
    seed=7,
    start=dt.date(2025, 10, 1),
    end=dt.date(2025, 12, 31),
    today=dt.date(2025, 12, 19),
    tickers=12,
    option_underlyings=3,
    contracts_per_underlying=24,
    minute=True,
)


@pytest.fixture(scope="session")
def sandbox_config() -> MarketConfig:
    """The small market every shared-sandbox test sees (awkward tickers, splits, 3 option underlyings)."""
    return SANDBOX_CONFIG


@pytest.fixture(scope="session")
def sandbox(sandbox_config: MarketConfig) -> Iterator[SandboxServer]:
    """A running sandbox (REST + S3) on free loopback ports, shared by the tests of one worker."""
    with SandboxServer(sandbox_config, host="127.0.0.1", rest_port=0, s3_port=0) as server:
        yield server


@pytest.fixture
def faults(sandbox: SandboxServer) -> Iterator[Faults]:
    """The shared sandbox's fault knobs, reset to a well-behaved server after the test."""
    sandbox.faults.reset()
    yield sandbox.faults
    sandbox.faults.reset()


@pytest.fixture
def sandbox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: SandboxServer) -> dict[str, str]:
    """Environment pointing QuantMini at the shared sandbox, with a fresh data dir under tmp_path."""
    data_dir = tmp_path / "data"
    env = {**sandbox.env(), "QM_DATA_DIR": str(data_dir), "DLT_DATA_DIR": str(data_dir / "dlt")}
    monkeypatch.delenv("MASSIVE_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
