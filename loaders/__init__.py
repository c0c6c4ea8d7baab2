"""QuantMini: Polygon/Massive market data to Parquet (bronze), DuckDB features (silver) and Qlib (gold)."""

__version__ = "0.1.0"
