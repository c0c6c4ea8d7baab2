"""`adapter` for sqlfluff's Jinja templater, which lints the models without a dbt adapter.

`adapter.dispatch(name, package)` returns a function rendering a neutral placeholder in place of the
engine-specific macro (macros/cross_engine/): a type name for `type_*` macros, `null` for expressions,
so the surrounding SQL parses and is linted as written. dbt renders the real macros.
"""

from __future__ import annotations


def dispatch(macro_name: str, macro_namespace: str | None = None):
    def render(*args, **kwargs):
        if macro_name.startswith("type_") or macro_name == "engine_type":
            return "varchar"
        if macro_name.startswith("incremental_") or macro_name.startswith("delete_"):
            return ""
        return "null"

    return render


def type():  # noqa: A001 - the name dbt's adapter object uses
    return "duckdb"
