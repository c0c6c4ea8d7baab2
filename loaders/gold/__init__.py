"""Gold layer: the Qlib provider directory (day and 1min) written from the silver marts.

`exporter` reads DuckDB, `writer` lays out the bins (vectorised, incremental, byte-identical to a full
export), `symbols` maps Polygon tickers to Qlib instrument names, `commands` backs `quantmini export qlib`.
"""

from loaders.gold.exporter import DEFAULT_FEATURES, export_duckdb_file, export_qlib, parse_features
from loaders.gold.symbols import feature_dir_name, from_qlib_symbol, to_qlib_symbol
from loaders.gold.writer import ExportError, FreqStats

__all__ = [
    "DEFAULT_FEATURES",
    "ExportError",
    "FreqStats",
    "export_duckdb_file",
    "export_qlib",
    "feature_dir_name",
    "from_qlib_symbol",
    "parse_features",
    "to_qlib_symbol",
]
