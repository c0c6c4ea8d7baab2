"""Settings read from the environment, or from `.dlt/config.toml` / `.dlt/secrets.toml` the usual dlt way.

Environment variables win over the TOML files. Secrets are wrapped so that they never print.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_API_URL = "https://api.polygon.io"
DEFAULT_S3_ENDPOINT = "https://files.polygon.io"
DEFAULT_S3_BUCKET = "flatfiles"


class Secret(str):
    """A string whose repr/str hide the value; use `.reveal()` where the real value is needed."""

    def __repr__(self) -> str:
        return "Secret('***')" if self.reveal() else "Secret('')"

    def __str__(self) -> str:
        return "***" if self.reveal() else ""

    def __format__(self, spec: str) -> str:
        return str(self)

    def reveal(self) -> str:
        return str.__str__(self)


def _lookup(*names: str, default: Any = None) -> Any:
    """First non-empty value among environment variables `names`, then dlt config/secrets providers."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    try:
        import dlt

        for name in names:
            key = name.lower()
            for accessor in (dlt.secrets, dlt.config):
                try:
                    value = accessor.get(key)
                except Exception:
                    value = None
                if value:
                    return value
    except ImportError:  # pragma: no cover - dlt is a hard dependency
        pass
    return default


def read_setting(name: str, default: Any = None) -> Any:
    """One setting by its environment name (then `.dlt` config/secrets under its lower-case name)."""
    return _lookup(name, default=default)


@dataclass(frozen=True)
class Settings:
    api_key: Secret = field(repr=False)
    api_url: str
    s3_endpoint: str
    s3_bucket: str
    s3_access_key_id: Secret = field(repr=False)
    s3_secret_access_key: Secret = field(repr=False)
    data_dir: Path

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def bronze_dir(self) -> Path:
        return self.data_dir / "bronze"

    @property
    def gold_dir(self) -> Path:
        return self.data_dir / "gold" / "qlib"

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "quantmini.duckdb"

    @property
    def pipelines_dir(self) -> Path:
        """dlt pipeline working folders and local state (DLT_DATA_DIR points here)."""
        return self.data_dir / "dlt"

    @property
    def runs_dir(self) -> Path:
        """Run ledger: one JSON line per ingest run and per failed date/page."""
        return self.data_dir / "runs"

    def redact(self, text: str) -> str:
        """Remove every secret value from `text` (log lines, exception messages, URLs)."""
        for secret in (self.api_key, self.s3_access_key_id, self.s3_secret_access_key):
            raw = secret.reveal()
            if raw:
                text = text.replace(raw, "***")
        return text


DBT_PROJECT_DIR_SETTING = "QM_DBT_PROJECT_DIR"


def dbt_project_dir() -> Path:
    """The dbt project every command runs: the folder `QM_DBT_PROJECT_DIR` names, else the one shipped
    with this package (the repository root beside `loaders/`, which an editable install keeps in place).

    The current directory plays no part, so a command behaves the same wherever it is started."""
    configured = os.environ.get(DBT_PROJECT_DIR_SETTING)
    if configured:
        folder = Path(configured).expanduser().resolve()
        origin = f"{DBT_PROJECT_DIR_SETTING}={configured}"
    else:
        folder = Path(__file__).resolve().parent.parent
        origin = (
            f"the default of {DBT_PROJECT_DIR_SETTING} (the folder holding the installed loaders package)"
        )
    if not (folder / "dbt_project.yml").is_file():
        raise FileNotFoundError(
            f"no dbt_project.yml in {folder}, from {origin}: set {DBT_PROJECT_DIR_SETTING} to the folder "
            "of QuantMini's dbt project (the repository root)"
        )
    return folder


DEFAULT_DUCKDB_MEMORY_LIMIT = "1GB"
DEFAULT_DUCKDB_THREADS = 2


def duckdb_config(data_dir: Path) -> dict[str, str]:
    """DuckDB settings every connection of ours uses, the same knobs as `profiles.yml`: a memory limit
    well below the 2 GiB a step may use, a thread count, and a spill folder inside the data directory
    (DuckDB writes what does not fit there instead of failing)."""
    return {
        "memory_limit": os.environ.get("QM_DUCKDB_MEMORY_LIMIT") or DEFAULT_DUCKDB_MEMORY_LIMIT,
        "threads": os.environ.get("QM_DUCKDB_THREADS") or str(DEFAULT_DUCKDB_THREADS),
        "temp_directory": str(Path(data_dir) / "duckdb_tmp"),
    }


def load_settings() -> Settings:
    data_dir = Path(_lookup("QM_DATA_DIR", default="./data")).expanduser().resolve()
    return Settings(
        api_key=Secret(_lookup("POLYGON_API_KEY", "MASSIVE_API_KEY", default="")),
        api_url=str(_lookup("POLYGON_API_URL", default=DEFAULT_API_URL)).rstrip("/"),
        s3_endpoint=str(_lookup("POLYGON_S3_ENDPOINT", default=DEFAULT_S3_ENDPOINT)).rstrip("/"),
        s3_bucket=str(_lookup("POLYGON_S3_BUCKET", default=DEFAULT_S3_BUCKET)),
        s3_access_key_id=Secret(_lookup("POLYGON_S3_ACCESS_KEY_ID", default="")),
        s3_secret_access_key=Secret(_lookup("POLYGON_S3_SECRET_ACCESS_KEY", default="")),
        data_dir=data_dir,
    )


def prepare_dlt_environment(settings: Settings) -> None:
    """Keep dlt's pipelines folder (state, load packages) inside the data directory."""
    from loaders.storage_errors import quiet_dlt_storage_tracebacks

    quiet_dlt_storage_tracebacks()  # a full disk is reported once, in plain words, by the command
    settings.pipelines_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DLT_DATA_DIR", str(settings.pipelines_dir))
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    # Our bronze destinations are dlt custom destinations. dlt (1.31) commits the load-package state from
    # the worker thread after each custom-destination job while the main thread writes job metrics into the
    # same state; run together they corrupt it (a segfault in the JSON encoder under load). One worker makes
    # dlt run load jobs in the calling thread (pool type "none"); staging is cheap, so nothing is lost.
    os.environ["LOAD__WORKERS"] = "1"
