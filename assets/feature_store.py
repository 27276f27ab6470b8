"""Feast: the registry of the domain's definitions and the online store, materialized in explicit windows."""

import time
from datetime import UTC, datetime, timedelta

import dagster as dg

from assets.keys import ONLINE_FRESHNESS_CHECK, DomainKeys
from assets.pools import LAKE_POOL
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain
from lakehouse.feature_store.feast_objects import (
    apply_definitions,
    online_store_kind,
    store_locations,
    write_resolved_yaml,
)
from lakehouse.feature_store.materialization import materialization_state, materialize_online, online_lag


class OnlineMaterializationConfig(dg.Config):
    """Rewrite the whole history instead of the window since the last materialization."""

    full_refresh: bool = False


def registry_asset(domain: Domain) -> dg.AssetsDefinition:
    """Apply the domain's Feast definitions (what `feast apply` does)."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.feast_registry,
        deps=[keys.features(v) for v in domain.feature_views],
        group_name=keys.group("feature_store"),
        pool=LAKE_POOL,
        description=f"Feast registry: the {domain.entity} entity, its feature views and {domain.feature_service}.",
        kinds={"feast"},
    )
    def _registry(lakehouse: LakehouseResource):
        store = lakehouse.feature_store()
        applied = apply_definitions(store, domain, lakehouse.paths)
        yaml_path = write_resolved_yaml(lakehouse.paths)
        return dg.MaterializeResult(
            metadata={
                "project": applied["project"],
                "feature_views": dg.MetadataValue.json(applied["feature_views"]),
                "feature_services": dg.MetadataValue.json(applied["feature_services"]),
                "entities": dg.MetadataValue.json(applied["entities"]),
                "feature_store_yaml": dg.MetadataValue.path(str(yaml_path)),
                "registry": store_locations(lakehouse.paths)["registry"],
            }
        )

    return _registry


def online_asset(domain: Domain) -> dg.AssetsDefinition:
    """Materialize feature views into the online store over an explicit time window."""
    keys = DomainKeys.of(domain)
    key = keys.online_features

    @dg.asset(
        key=key,
        deps=[keys.feast_registry],
        group_name=keys.group("feature_store"),
        pool=LAKE_POOL,
        description="Latest feature values per entity in Feast's online store, written window by window.",
        kinds={"feast", online_store_kind()},
    )
    def _online(context: dg.AssetExecutionContext, config: OnlineMaterializationConfig, lakehouse: LakehouseResource):
        store = lakehouse.feature_store()
        started = time.perf_counter()
        result = materialize_online(store, domain, lakehouse.paths, full_refresh=config.full_refresh)
        seconds = time.perf_counter() - started
        rows = sum(result["rows"].values())
        context.log.info(f"materialized {rows:,} rows in [{result['start']}, {result['end']}) in {seconds:.1f}s")
        return dg.MaterializeResult(
            metadata={
                "window_start": result["start"],
                "window_end": result["end"],
                "rows_written": rows,
                "rows_per_view": dg.MetadataValue.json(result["rows"]),
                "entities_online": result["entities"],
                "online_store": store_locations(lakehouse.paths)["online_store"],
                "seconds": round(seconds, 2),
                "rows_per_second": round(rows / seconds) if seconds else 0,
            }
        )

    return _online


def online_freshness_check(domain: Domain) -> dg.AssetChecksDefinition:
    """The online store holds every feature view up to the newest offline feature row."""
    keys = DomainKeys.of(domain)

    @dg.asset_check(
        asset=keys.online_features,
        name=ONLINE_FRESHNESS_CHECK,
        pool=LAKE_POOL,
        description="Every feature view is materialized up to its newest offline row (lag <= 1 day).",
    )
    def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        lag = online_lag(lakehouse.paths, domain)
        state = materialization_state(lakehouse.paths)
        stale = {v: str(d) for v, d in lag.items() if d is None or d > timedelta(days=1)}
        newest = max((datetime.fromisoformat(e) for e in state.values()), default=None)
        age = (datetime.now(UTC).replace(tzinfo=None) - newest) if newest else None
        return dg.AssetCheckResult(
            passed=not stale,
            metadata={
                "lag_per_view": dg.MetadataValue.json({v: str(d) for v, d in lag.items()}),
                "stale_views": dg.MetadataValue.json(stale),
                "wall_clock_age_days": round(age.total_seconds() / 86400, 1) if age else -1,
            },
        )

    return _check
