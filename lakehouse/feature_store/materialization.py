"""Online materialization in explicit windows, with the window ends recorded per feature view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from lakehouse.declarations.domain import Domain
from lakehouse.feature_store.feast_objects import online_store_location, store_locations
from lakehouse.io import write_json_atomic
from lakehouse.paths import LakePaths

ONE_TICK = timedelta(microseconds=1)


def _store_windows(paths: LakePaths) -> dict[str, dict[str, str]]:
    """Every online store's window ends, keyed by the store (its kind and location, no password)."""
    f = paths.materialized_windows
    raw = json.loads(f.read_text()) if f.exists() else {}
    # A file from before windows were kept per store is one flat {view: end} of an unknown store: it
    # counts for none, so the configured store gets a full materialization.
    return {store: windows for store, windows in raw.items() if isinstance(windows, dict)}


def materialization_state(paths: LakePaths) -> dict[str, str]:
    """The end of the last window materialized into the configured online store, per feature view (naive UTC ISO).

    Keyed by the store, so switching a data root to another store (LAKEHOUSE_ONLINE_STORE) materializes
    everything into it instead of nothing.
    """
    return _store_windows(paths).get(_store_key(paths, store_locations(paths)["online_store"]), {})


def _store_key(paths: LakePaths, location: str) -> str:
    """The store's location, relative when it is inside the data root (a copied or moved root keeps its windows)."""
    return location.replace(str(paths.root), "<data root>")


def offline_range(paths: LakePaths, view: str) -> tuple[datetime | None, datetime | None]:
    """The first and last event timestamps of a feature view's offline table."""
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT min(event_timestamp), max(event_timestamp) FROM read_parquet('{paths.features(view)}')"
        ).fetchall()[0]


def materialize_online(store: Any, domain: Domain, paths: LakePaths, full_refresh: bool = False) -> dict[str, Any]:
    """Write each feature view's rows since its last window end (or all of them) to the online store.

    The lakehouse sqlite store is written in bulk (materialize_window); any other online store (the
    production profile's Redis) through Feast's own materialize.
    """
    from lakehouse.feature_store.sqlite_online_store import LakehouseSqliteOnlineStoreConfig, materialize_window

    bulk = isinstance(store.config.online_store, LakehouseSqliteOnlineStoreConfig)
    # The store written to, as its own config says (not the environment, which may name another).
    store_key = _store_key(paths, online_store_location(store.config.online_store.model_dump()))
    state = {} if full_refresh else _store_windows(paths).get(store_key, {})
    rows: dict[str, int] = {}
    starts, ends = [], []
    for view in domain.feature_views:
        first, last = offline_range(paths, view.name)
        if last is None:
            rows[view.name] = 0
            continue
        start = datetime.fromisoformat(state[view.name]) if view.name in state else first
        end = last + ONE_TICK  # windows are [start, end): the newest row must be inside
        if bulk:
            written = materialize_window(store, [view.name], start.replace(tzinfo=UTC), end.replace(tzinfo=UTC))
            rows[view.name] = written.get(view.name, 0)
        else:
            store.materialize(start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), feature_views=[view.name])
            rows[view.name] = _window_entities(paths, domain, view.name, start, end)
        state[view.name] = end.isoformat()
        starts.append(start)
        ends.append(end)
        # Recorded after each view, so a killed run redoes only the views it had not finished.
        write_json_atomic({**_store_windows(paths), store_key: state}, paths.materialized_windows)
    with duckdb.connect() as con:
        entities = con.execute(
            f"SELECT count(DISTINCT {domain.entity_key}) FROM read_parquet("
            f"{[str(paths.features(v.name)) for v in domain.feature_views]!r})"
        ).fetchall()[0][0]
    return {
        "rows": rows,
        "start": str(min(starts)) if starts else None,
        "end": str(max(ends)) if ends else None,
        "entities": entities,
    }


def _window_entities(paths: LakePaths, domain: Domain, view: str, start: datetime, end: datetime) -> int:
    """Entities with a row in [start, end] of a view's offline table: the rows a materialization writes."""
    with duckdb.connect() as con:
        return con.execute(
            f"SELECT count(DISTINCT {domain.entity_key}) FROM read_parquet('{paths.features(view)}') "
            "WHERE event_timestamp BETWEEN ? AND ?",
            [start, end],
        ).fetchall()[0][0]


def online_lag(paths: LakePaths, domain: Domain) -> dict[str, timedelta | None]:
    """How far each view's online window end trails its newest offline row (None: never materialized)."""
    state = materialization_state(paths)
    lag: dict[str, timedelta | None] = {}
    for view in domain.feature_views:
        _, last = offline_range(paths, view.name)
        if view.name not in state or last is None:
            lag[view.name] = None
        else:
            lag[view.name] = max(last + ONE_TICK - datetime.fromisoformat(state[view.name]), timedelta(0))
    return lag
