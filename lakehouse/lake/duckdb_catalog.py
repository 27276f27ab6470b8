"""A DuckDB catalog file with one view per lake table, for ad-hoc SQL over the Parquet files."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from lakehouse.declarations.domain import Domain
from lakehouse.io import parquet_glob
from lakehouse.paths import LakePaths


def catalog_tables(paths: LakePaths, domain: Domain) -> dict[str, str]:
    """View name -> the Parquet path or glob it reads, for every lake table that exists."""
    tables: dict[str, str] = {}
    for s in domain.sources:
        tables[f"{s.name}_bronze"] = parquet_glob(paths.bronze(s.name))
        tables[f"{s.name}_quarantine"] = parquet_glob(paths.quarantine(s.name))
        tables[f"{s.name}_silver"] = str(paths.silver(s.name))
    for v in domain.feature_views:
        tables[f"{v.name}_features"] = str(paths.features(v.name))
    tables["label_events"] = str(paths.labels(domain.name))
    tables["training_set"] = str(paths.training_set(domain.name))
    tables["training_runs"] = parquet_glob(paths.experiments)  # one row per training run
    return {name: p for name, p in tables.items() if any(Path(p).parent.glob(Path(p).name))}


def refresh_catalog(paths: LakePaths, domains: list[Domain]) -> dict[str, dict[str, str]]:
    """Rebuild data/lakehouse.duckdb (one schema per domain) beside the old one and swap it in atomically."""
    tables = {domain.name: catalog_tables(paths, domain) for domain in domains}
    target = paths.duckdb_file
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    with duckdb.connect(str(tmp)) as con:
        for schema, views in tables.items():
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for name, path in views.items():
                con.execute(
                    f"CREATE VIEW {schema}.{name} AS SELECT * FROM read_parquet('{path}', union_by_name = true)"
                )
    os.replace(tmp, target)
    return tables
