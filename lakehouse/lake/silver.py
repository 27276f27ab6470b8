"""Silver: one typed, deduplicated table per source, built from published batches only."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from lakehouse.declarations.domain import Source
from lakehouse.io import copy_to_parquet_atomic, write_parquet_atomic
from lakehouse.lake.validation import POLARS_TYPES, validation_reports
from lakehouse.paths import LakePaths


def empty_frame(source: Source) -> pl.DataFrame:
    """A source's typed silver frame with no rows (so downstream queries still see the columns)."""
    return pl.DataFrame(schema={c.name: POLARS_TYPES[c.dtype] for c in source.columns} | {"_batch_id": pl.String})


def build_silver(paths: LakePaths, source: Source) -> dict[str, Any]:
    """Rebuild a source's silver table from its published batches; return row counts."""
    reports = validation_reports(paths, source.name)
    published = [r["batch_id"] for r in reports if r["status"] == "published"]
    held = [r["batch_id"] for r in reports if r["status"] == "held"]
    out = paths.silver(source.name)
    if not published:
        write_parquet_atomic(empty_frame(source), out)
        return {"rows_in": 0, "rows": 0, "duplicates_collapsed": 0, "batches": 0, "held_batches": held}
    files = [str(paths.validated(source.name) / f"{b}.parquet") for b in published]
    columns = ", ".join(f'"{c}"' for c in source.column_names)
    key = ", ".join(f'"{k}"' for k in source.silver_key)
    # The newest version of a key wins: by its version column if it has one, then by arrival order.
    order = (f'"{source.version_column}" DESC, ' if source.version_column else "") + "_ingested_at DESC, _row DESC"
    query = f"""
        SELECT {columns}, _batch_id
        FROM read_parquet({files!r}, union_by_name = true)
        QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}) = 1
    """
    rows_in = sum(r["rows_valid"] for r in reports if r["status"] == "published")
    with duckdb.connect() as con:
        rows = copy_to_parquet_atomic(con, query, out)
    return {
        "rows_in": rows_in,
        "rows": rows,
        "duplicates_collapsed": rows_in - rows,
        "batches": len(published),
        "held_batches": held,
    }
