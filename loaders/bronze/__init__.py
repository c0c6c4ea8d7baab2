"""Bronze: Hive-partitioned Parquet (ZSTD) under `$QM_DATA_DIR/bronze/<dataset>/`, each partition replaced
as a whole.

- `partitions`: folder names, the crash-proof swap of a partition, `replace_partitions` and the keyed
  `merge_partitions` for tables that fit in memory (REST datasets).
- `staging`: flat-file loads staged per dlt load and committed session by session (`commit_staged`).
- `destinations`: the two dlt destinations (`bronze_flatfiles`, `bronze_rest`); imported on their own, as
  they load dlt.

The names below are the package's API for the rest of the code.
"""

from loaders.bronze.partitions import (
    STAGING,
    TRASH,
    dataset_dir,
    merge_partitions,
    partition_column_value,
    partition_name,
    partition_values,
    repair_swaps,
    replace_partitions,
    swap_in,
)
from loaders.bronze.staging import (
    CommitResult,
    commit_staged,
    split_by_column,
    stage_file,
    stage_manifest,
    staged_load_dir,
    staged_load_ids,
)

__all__ = [
    "STAGING",
    "TRASH",
    "CommitResult",
    "commit_staged",
    "dataset_dir",
    "staged_load_dir",
    "merge_partitions",
    "partition_column_value",
    "partition_name",
    "partition_values",
    "repair_swaps",
    "replace_partitions",
    "split_by_column",
    "stage_file",
    "stage_manifest",
    "staged_load_ids",
    "swap_in",
]
