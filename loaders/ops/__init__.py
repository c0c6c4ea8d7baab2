"""Operations over the lakehouse: gaps, backfill, bulk load, status, validation, reports, cleanup, refresh, schedule."""
