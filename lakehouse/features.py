"""Features: the entity spine, feature tables (Feast's offline sources) and label events, in DuckDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from lakehouse.domain import Domain, FeatureView
from lakehouse.io import copy_to_parquet_atomic
from lakehouse.paths import LakePaths


def _connect(paths: LakePaths, sources: tuple[str, ...], spine: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the named silver tables (and the spine) as views."""
    con = duckdb.connect()
    for name in sources:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{paths.silver(name)}')")
    if spine:
        con.execute(f"CREATE VIEW spine AS SELECT * FROM read_parquet('{paths.spine}')")
    return con


def _write(con: duckdb.DuckDBPyConnection, sql: str, order: str, out: Path) -> int:
    copy_to_parquet_atomic(con, f"SELECT * FROM ({sql}) ORDER BY {order}", out)
    return con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchall()[0][0]


def build_spine(paths: LakePaths, domain: Domain) -> dict[str, Any]:
    """Write the (entity, day) spine every feature view is computed on."""
    with _connect(paths, domain.spine_sources, spine=False) as con:
        rows = _write(con, domain.spine_sql, f"{domain.entity_key}, day", paths.spine)
        first, last, entities = con.execute(
            f"SELECT min(day), max(day), count(DISTINCT {domain.entity_key}) FROM read_parquet('{paths.spine}')"
        ).fetchall()[0]
    return {"rows": rows, "entities": entities, "first_day": str(first), "last_day": str(last)}


def build_feature_view(paths: LakePaths, domain: Domain, view: FeatureView) -> dict[str, Any]:
    """Write one feature view's table; return its row count and per-feature statistics."""
    out = paths.features(view.name)
    with _connect(paths, view.sources, spine=True) as con:
        rows = _write(con, view.sql, f"{domain.entity_key}, event_timestamp", out)
        stats = feature_statistics(con, out, view)
    return {"rows": rows, **stats}


def feature_statistics(con: duckdb.DuckDBPyConnection, path: Path, view: FeatureView) -> dict[str, Any]:
    """Min, max, mean and null share of each feature, and the event-time range of the table."""
    summary = con.sql(f"SUMMARIZE SELECT * FROM read_parquet('{path}')").pl()
    by_name = {r["column_name"]: r for r in summary.iter_rows(named=True)}
    first, last = con.execute(
        f"SELECT min(event_timestamp), max(event_timestamp) FROM read_parquet('{path}')"
    ).fetchall()[0]
    features = {}
    for f in view.features:
        r = by_name[f.name]
        features[f.name] = {
            "dtype": f.dtype,
            "min": r["min"],
            "max": r["max"],
            "mean": None if r["avg"] is None else round(float(r["avg"]), 4),
            "null_pct": float(r["null_percentage"] or 0),
            "distinct": r["approx_unique"],
        }
    return {"first_event": str(first), "last_event": str(last), "features": features}


def build_labels(paths: LakePaths, domain: Domain) -> dict[str, Any]:
    """Write the label events (entity, as-of time, label) for the domain's matured windows."""
    with _connect(paths, domain.label_sources, spine=True) as con:
        rows = _write(con, domain.label_sql, f"event_timestamp, {domain.entity_key}", paths.labels)
        positives, as_of_dates = con.execute(
            f"SELECT coalesce(sum({domain.label_name}), 0), count(DISTINCT event_timestamp) FROM read_parquet('{paths.labels}')"
        ).fetchall()[0]
    return {"rows": rows, "positives": int(positives), "as_of_dates": as_of_dates,
            "positive_rate": round(positives / rows, 4) if rows else None}
