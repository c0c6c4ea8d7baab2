"""dlt destination that upserts REST tables into bronze with `loaders.bronze.merge_partitions`.

dlt hands over each table's Parquet job file (`batch_size=0`); the file is merged by primary key into
`bronze/<dataset>/[<table>/]<partition>=YYYY-MM-DD/`. A key that moved to another date (an article
re-published later) leaves its old partition, so a key lives in one place. Jobs of one load run one at a
time: two merges of the same partitions must not interleave. A retried job merges the same rows again,
which changes nothing, so dlt's resume of a half-loaded package is safe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pyarrow.parquet as pq
from dlt.common.destination.exceptions import DestinationTerminalException

from loaders import bronze
from loaders.rest import settings


def table_dir(dataset: settings.Dataset, table: settings.Table) -> str:
    """Folder of a bronze table relative to the bronze root: the dataset, or dataset/table when it has several."""
    return dataset.name if len(dataset.tables) == 1 else f"{dataset.name}/{table.name}"


@dlt.destination(
    name="bronze_rest",
    loader_file_format="parquet",
    batch_size=0,
    naming_convention="direct",
    skip_dlt_columns_and_tables=False,
    max_parallel_load_jobs=1,
)
def bronze_rest(
    items: Any, table: Any, bronze_root: str = dlt.config.value, dataset: str = dlt.config.value
) -> None:
    """Merge one Parquet job file of `dataset` into bronze (module level, so `dlt pipeline ... info` can load it)."""
    spec = settings.DATASETS[dataset]
    tables = {t.name: t for t in spec.tables}
    table_spec = tables.get(table["name"])
    if table_spec is None:
        return  # dlt's own bookkeeping tables
    data = pq.read_table(items)
    try:
        # a key may include the partition date (short data by ticker and date): merge_partitions reads it
        # back from the folder names of existing files
        bronze.merge_partitions(
            Path(bronze_root), table_dir(spec, table_spec), data, table_spec.partition, table_spec.primary_key
        )
    except ValueError as exc:
        # bad rows (a null key or partition date) fail this load for good instead of being retried
        # before every later run
        raise DestinationTerminalException(f"{dataset}.{table['name']}: {exc}") from None


def bronze_merge_destination(root: Path, dataset: settings.Dataset) -> Any:
    """The bronze destination of one dataset's pipeline."""
    return bronze_rest(bronze_root=str(root), dataset=dataset.name)
