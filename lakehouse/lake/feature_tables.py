"""Features: the entity spine, feature tables (Feast's offline sources) and label events, in DuckDB."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from lakehouse.declarations.domain import Domain, FeatureView
from lakehouse.io import copy_to_arrow_atomic, copy_to_parquet_atomic
from lakehouse.paths import LakePaths


def _connect(paths: LakePaths, sources: tuple[str, ...], spine_of: str | None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the named silver tables (and a domain's spine) as views."""
    con = duckdb.connect()
    for name in sources:
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{paths.silver(name)}')")
    if spine_of:
        con.execute(f"CREATE VIEW spine AS SELECT * FROM read_parquet('{paths.spine(spine_of)}')")
    return con


def _active_sql(domain: Domain, spine: str) -> str:
    """The domain's entities on the spine's newest day, in key order (the order of the latest-row tables)."""
    key = domain.entity_key
    return f"SELECT DISTINCT {key} FROM {spine} WHERE day = (SELECT max(day) FROM {spine}) ORDER BY {key}"


def build_spine(paths: LakePaths, domain: Domain) -> dict[str, Any]:
    """Write the (entity, day) spine every feature view is computed on."""
    with _connect(paths, domain.spine_sources, spine_of=None) as con:
        rows = copy_to_parquet_atomic(con, domain.spine_sql, paths.spine(domain.name))
        # The entities of the newest day, for batch scoring (one small file instead of a scan of the spine).
        copy_to_arrow_atomic(
            con,
            _active_sql(domain, f"read_parquet('{paths.spine(domain.name)}')"),
            paths.latest(f"_{domain.name}_active"),
        )
        first, last, entities = con.execute(
            f"SELECT min(day), max(day), count(DISTINCT {domain.entity_key}) FROM read_parquet('{paths.spine(domain.name)}')"
        ).fetchall()[0]
    return {"rows": rows, "entities": entities, "first_day": str(first), "last_day": str(last)}


def build_feature_view(paths: LakePaths, domain: Domain, view: FeatureView) -> dict[str, Any]:
    """Write one feature view's table; return its row count and per-feature statistics."""
    out = paths.features(view.name)
    with _connect(paths, view.sources, spine_of=domain.name) as con:
        rows = copy_to_parquet_atomic(con, view.sql, out)
        # The newest row per active entity (what the online store holds after materialization; nulls where
        # the view has none), in the active entities' order, so batch scoring puts the views side by side.
        key = domain.entity_key
        newest = (
            f"SELECT * FROM read_parquet('{out}') "
            f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY event_timestamp DESC) = 1"
        )
        copy_to_arrow_atomic(
            con,
            f"SELECT * FROM ({_active_sql(domain, 'spine')}) LEFT JOIN ({newest}) USING ({key}) ORDER BY {key}",
            paths.latest(view.name),
        )
        stats = feature_statistics(con, out, view)
    return {"rows": rows, **stats}


def feature_statistics(con: duckdb.DuckDBPyConnection, path: Path, view: FeatureView) -> dict[str, Any]:
    """Min, max, mean and null share of each feature, and the event-time range of the table (one scan)."""
    aggregates = ["min(event_timestamp)", "max(event_timestamp)", "count(*)"]
    for f in view.features:
        mean = f"avg({f.name})" if f.dtype != "string" else "NULL"
        aggregates += [f"min({f.name})", f"max({f.name})", mean, f"count({f.name})"]
    first, last, rows, *values = con.execute(f"SELECT {', '.join(aggregates)} FROM read_parquet('{path}')").fetchall()[
        0
    ]
    features = {}
    for i, f in enumerate(view.features):
        low, high, mean, present = values[4 * i : 4 * i + 4]
        features[f.name] = {
            "dtype": f.dtype,
            "min": low,
            "max": high,
            "mean": None if mean is None else round(float(mean), 4),
            "null_pct": round(100 * (1 - present / rows), 2) if rows else 0.0,
        }
    return {"first_event": str(first), "last_event": str(last), "features": features}


def current_label_events(paths: LakePaths, domain: Domain) -> Any:
    """The label events the lake holds now (what build_labels would write), as a polars frame."""
    with _connect(paths, domain.label_sources, spine_of=domain.name) as con:
        return con.sql(f"SELECT * FROM ({domain.label_sql}) ORDER BY ALL").pl()


def build_labels(paths: LakePaths, domain: Domain) -> dict[str, Any]:
    """Write the label events (entity, as-of time, label) for the domain's matured windows."""
    with _connect(paths, domain.label_sources, spine_of=domain.name) as con:
        rows = copy_to_parquet_atomic(
            con, f"SELECT * FROM ({domain.label_sql}) ORDER BY ALL", paths.labels(domain.name)
        )
        positives, as_of_dates = con.execute(
            f"SELECT coalesce(sum({domain.label_name}), 0), count(DISTINCT event_timestamp) FROM read_parquet('{paths.labels(domain.name)}')"
        ).fetchall()[0]
    return {
        "rows": rows,
        "positives": int(positives),
        "as_of_dates": as_of_dates,
        "positive_rate": round(positives / rows, 4) if rows else None,
    }


def recent_features(
    paths: LakePaths,
    domain: Domain,
    days: int | None = 7,
    max_rows: int | None = None,
    seed: int = 0,
    until: datetime | None = None,
) -> Any:
    """Every view's feature rows of the newest `days` days (None: all), joined on (entity, event time): a polars frame.

    The current window for drift. Views without a row for an (entity, time) give nulls; max_rows
    samples rows reproducibly (seeded), so the drift cost stays bounded on a large lake. `until` ends
    the window at that time instead of the newest row (to replay the check over past days).
    """
    key = domain.entity_key
    first, *rest = domain.feature_views

    def cols(view: FeatureView, alias: str) -> str:
        return ", ".join(f"{alias}.{f.name}" for f in view.features)

    joins = " ".join(
        f"LEFT JOIN read_parquet('{paths.features(v.name)}') v{n} USING ({key}, event_timestamp)"
        for n, v in enumerate(rest, start=1)
    )
    selects = ", ".join([cols(first, "v0"), *(cols(v, f"v{n}") for n, v in enumerate(rest, start=1))])
    end = (
        "?" if until is not None else f"(SELECT max(event_timestamp) FROM read_parquet('{paths.features(first.name)}'))"
    )
    where = []
    if days is not None:
        where.append(f"v0.event_timestamp > {end} - INTERVAL {int(days)} DAY")
    if until is not None:
        where.append(f"v0.event_timestamp <= {end}")
    query = (
        f"SELECT {key}, event_timestamp, {selects} FROM read_parquet('{paths.features(first.name)}') v0 {joins} "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + f"ORDER BY event_timestamp, {key}"
    )
    with duckdb.connect() as con:
        frame = con.sql(query, params=[until] * len(where) if until is not None else None).pl()
    if max_rows is not None and frame.height > max_rows:
        frame = frame.sample(n=max_rows, seed=seed).sort("event_timestamp", key)
    return frame
