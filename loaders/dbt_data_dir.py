"""dbt-duckdb plugin that creates the data directory before DuckDB opens its database file there.

`dbt build` is often the first command a user runs on a fresh checkout, before any loader has created
`QM_DATA_DIR`; DuckDB creates the database file but not its folder, so without this the first build
ends in an IO error. The profile lists this module under `plugins`; dbt-duckdb calls
`update_connection_config` just before `duckdb.connect`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin


class Plugin(BasePlugin):
    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        path = str(creds.path or "")
        # in-memory databases and remote URIs (md:, s3://...) have no local folder to create
        if not path or path == ":memory:" or "://" in path or path.startswith("md:"):
            return
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
