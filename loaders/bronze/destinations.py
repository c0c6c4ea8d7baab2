"""The two dlt destinations of bronze, each a module-level `@dlt.destination` function.

Declared the dlt way, a destination is a factory class dlt can import by name: the pipeline state records
`loaders.bronze.destinations.<Name>Destination`, so `dlt pipeline <name> info` (or a later load of a
pending package) from another process finds the same callable. Each callable receives only settings it
can be given as configuration (the bronze root and the dataset name) and looks the rest up in the dataset
registry (`loaders.datasets`).

- `bronze_flatfiles` stages each Parquet job file of a flat-file load for `staging.commit_staged`
  (hard link, or one file per session for a file gathering several small sessions).
- `bronze_rest` upserts each Parquet job file of a REST dataset into bronze with
  `partitions.merge_partitions`, into `bronze/<dataset>/[<table>/]<partition>=YYYY-MM-DD/`. A key that
  moved to another date (an article re-published later) leaves its old partition, so a key lives in one
  place. A retried job merges the same rows again, which changes nothing, so dlt's resume of a
  half-loaded package is safe.

Jobs of one load run one at a time (`max_parallel_load_jobs=1`): dlt commits the shared load-package state
after every custom-destination job, and two threads doing that at once corrupt it (seen as a segfault in
orjson under load); two merges of the same partitions must not interleave either. dlt's own tables (the
pipeline state) reach the callables, which ignore them (`skip_dlt_columns_and_tables=False`): a skipped
job would leave dlt's load loop waiting a full second for a completion signal that never comes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import dlt
import pyarrow.parquet as pq
from dlt.common.destination.exceptions import DestinationTerminalException

from loaders import datasets as registry
from loaders.bronze import partitions, staging

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------- flat files


@dlt.destination(
    name="bronze",
    loader_file_format="parquet",
    batch_size=0,
    naming_convention="direct",
    skip_dlt_columns_and_tables=False,
    max_parallel_load_jobs=1,
    loader_parallelism_strategy="sequential",
)
def bronze_flatfiles(
    items: Any, table: Any, bronze_root: str = dlt.config.value, dataset: str = dlt.config.value
) -> None:
    """Stage one Parquet job file of flat-file `dataset` (its data or its manifest table)."""
    from loaders.flatfiles.parse import session_from_key

    spec = registry.DATASETS[dataset]
    name = table["name"]
    if name == spec.manifest_table:
        staging.stage_manifest(Path(bronze_root), dataset, items)
    elif name == spec.name:
        (data,) = spec.tables
        staging.stage_file(
            Path(bronze_root), dataset, items, partition_column=data.partition, partition_of=session_from_key
        )
    else:
        log.debug("bronze destination ignores table %s", name)


def flatfiles_destination(root: Path | str, dataset: str) -> Any:
    """The bronze destination of one flat-file dataset's pipeline."""
    return bronze_flatfiles(bronze_root=str(root), dataset=dataset)


# --------------------------------------------------------------------------------------------------- REST


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
    """Merge one Parquet job file of REST `dataset` into bronze."""
    spec = registry.DATASETS[dataset]
    tables = {t.name: t for t in spec.tables}
    table_spec = tables.get(table["name"])
    if table_spec is None:
        return  # dlt's own bookkeeping tables
    data = pq.read_table(items)
    try:
        # a key may include the partition date (short data by ticker and date): merge_partitions reads it
        # back from the folder names of existing files
        partitions.merge_partitions(
            Path(bronze_root), spec.table_dir(table_spec), data, table_spec.partition, table_spec.primary_key
        )
    except ValueError as exc:
        # bad rows (a null key or partition date) fail this load for good instead of being retried
        # before every later run
        raise DestinationTerminalException(f"{dataset}.{table['name']}: {exc}") from None


def rest_destination(root: Path | str, dataset: str) -> Any:
    """The bronze destination of one REST dataset's pipeline."""
    return bronze_rest(bronze_root=str(root), dataset=dataset)
