"""Atomic file writes: a killed run never leaves a half-written file that later reads."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl


def _temp_beside(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A dot-prefixed name is ignored by every reader's glob, so a crash leaves only litter.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write; renamed onto `path` if the block succeeds, removed if not."""
    tmp = _temp_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> Path:
    """Write a Parquet file under a temporary name, then rename it into place."""
    with _replacing(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)
    return path


def copy_to_parquet_atomic(con: Any, query: str, path: Path) -> int:
    """Run DuckDB's COPY (query) TO a temporary name, rename it into place; return the rows written."""
    with _replacing(path) as tmp:
        [(rows,)] = con.execute(f"COPY ({query}) TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)").fetchall()
    return rows


def copy_to_arrow_atomic(con: Any, query: str, path: Path) -> int:
    """Write a DuckDB query's rows as an uncompressed Arrow IPC file (read without decoding); return the rows."""
    from pyarrow import feather

    table = con.sql(query).to_arrow_table()
    with _replacing(path) as tmp:
        feather.write_feather(table, tmp, compression="uncompressed")
    return table.num_rows


def copy_file_atomic(source: Path, path: Path) -> Path:
    """Copy a file under a temporary name beside the target, then rename it into place."""
    with _replacing(path) as tmp:
        shutil.copyfile(source, tmp)
    return path


def write_json_atomic(record: dict[str, Any], path: Path) -> Path:
    """Write a JSON record under a temporary name, then rename it into place."""
    with _replacing(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str, sort_keys=True))
    return path


def read_json_records(folder: Path) -> list[dict[str, Any]]:
    """All JSON records in a folder, oldest file name first."""
    if not folder.exists():
        return []
    return [json.loads(p.read_text()) for p in sorted(folder.glob("[!.]*.json"))]


def parquet_glob(folder: Path) -> str:
    """A glob of the finished Parquet files in a folder (temporary files start with a dot)."""
    return str(folder / "[!.]*.parquet")
