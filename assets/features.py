"""Features: the entity spine and one feature table per feature view (Feast's offline sources)."""

import dagster as dg

from assets.keys import DomainKeys
from assets.pools import LAKE_POOL
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain, FeatureView
from lakehouse.lake.duckdb_catalog import refresh_catalog
from lakehouse.lake.feature_tables import build_feature_view, build_spine


def spine_asset(domain: Domain) -> dg.AssetsDefinition:
    """One row per entity per active day: the grid every feature view is computed on."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.spine,
        deps=[keys.silver(domain.source(s)) for s in domain.spine_sources],
        group_name=keys.group("features"),
        pool=LAKE_POOL,
        description=f"One row per {domain.entity} per day it is active: the grid features are computed on.",
        kinds={"duckdb", "parquet"},
    )
    def _spine(lakehouse: LakehouseResource):
        stats = build_spine(lakehouse.paths, domain)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": stats["rows"],
                "entities": stats["entities"],
                "first_day": stats["first_day"],
                "last_day": stats["last_day"],
            }
        )

    return _spine


def feature_asset(domain: Domain, view: FeatureView) -> dg.AssetsDefinition:
    """The offline feature table of one feature view."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.features(view),
        deps=[keys.spine, *(keys.silver(domain.source(s)) for s in view.sources)],
        group_name=keys.group("features"),
        pool=LAKE_POOL,
        description=view.description,
        kinds={"duckdb", "parquet"},
    )
    def _features(lakehouse: LakehouseResource):
        stats = build_feature_view(lakehouse.paths, domain, view)
        table = stats["features"]
        schema = dg.TableSchema(
            columns=[
                dg.TableColumn(domain.entity_key, "int64", description=f"{domain.entity} key"),
                dg.TableColumn("event_timestamp", "timestamp", description="when the values became known (end of day)"),
                *(dg.TableColumn(f.name, f.dtype, description=f.description) for f in view.features),
            ]
        )
        stats_md = "| feature | min | max | mean | null % |\n|---|---|---|---|---|\n" + "\n".join(
            f"| {name} | {s['min']} | {s['max']} | {s['mean']} | {s['null_pct']:.1f} |" for name, s in table.items()
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": stats["rows"],
                "dagster/column_schema": schema,
                "feature_statistics": dg.MetadataValue.md(stats_md),
                "first_event": stats["first_event"],
                "last_event": stats["last_event"],
                "path": dg.MetadataValue.path(str(lakehouse.paths.features(view.name))),
            }
        )

    return _features


def catalog_asset(domain: Domain) -> dg.AssetsDefinition:
    """A DuckDB file of views over the lake's tables, for ad-hoc SQL."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.lake_catalog,
        deps=[*(keys.silver(s) for s in domain.sources), *(keys.features(v) for v in domain.feature_views)],
        group_name=keys.group("features"),
        pool=LAKE_POOL,
        description=f"data/lakehouse.duckdb: one view per lake table in schema '{domain.name}' (bronze to features).",
        kinds={"duckdb"},
    )
    def _catalog(lakehouse: LakehouseResource):
        from lakehouse.domains import load_domains

        # One file for every domain: rebuilding it for this one keeps the others' schemas.
        others = [d for d in load_domains().values() if d.name != domain.name]
        tables = refresh_catalog(lakehouse.paths, [domain, *others])
        first = next(iter(tables[domain.name]), "training_set")
        return dg.MaterializeResult(
            metadata={
                "views": dg.MetadataValue.json(sorted(tables[domain.name])),
                "schemas": dg.MetadataValue.json(sorted(tables)),
                "path": dg.MetadataValue.path(str(lakehouse.paths.duckdb_file)),
                "try": dg.MetadataValue.md(
                    f'`duckdb -readonly {lakehouse.paths.duckdb_file} "SELECT * FROM {domain.name}.{first} LIMIT 5"`'
                ),
            }
        )

    return _catalog
