"""Training data: label events and the point-in-time training set from Feast."""

import dagster as dg

from assets.keys import ONE_ROW_PER_LABEL_CHECK, DomainKeys
from assets.pools import LAKE_POOL
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain
from lakehouse.lake.feature_tables import build_labels
from lakehouse.ml.training_set import build_training_set, compare_with_labels


def labels_asset(domain: Domain) -> dg.AssetsDefinition:
    """Label events: (entity, as-of time, label) for every window whose outcome is known."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.label_events,
        deps=[keys.spine, *(keys.silver(domain.source(s)) for s in domain.label_sources)],
        group_name=keys.group("training"),
        pool=LAKE_POOL,
        description=f"Label events for '{domain.prediction}' ({domain.label_name}), matured windows only.",
        kinds={"duckdb", "parquet"},
    )
    def _labels(lakehouse: LakehouseResource):
        stats = build_labels(lakehouse.paths, domain)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": stats["rows"],
                "positives": stats["positives"],
                "positive_rate": stats["positive_rate"] or 0.0,
                "as_of_dates": stats["as_of_dates"],
            }
        )

    return _labels


def training_set_asset(domain: Domain) -> dg.AssetsDefinition:
    """Feast's point-in-time join of the feature service onto the label events."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.training_set,
        deps=[keys.label_events, keys.feast_registry],
        group_name=keys.group("training"),
        pool=LAKE_POOL,
        description=f"One row per label event with the {domain.feature_service} features known at its time.",
        kinds={"feast", "duckdb", "parquet"},
    )
    def _training_set(lakehouse: LakehouseResource):
        stats = build_training_set(lakehouse.feature_store(), domain, lakehouse.paths)
        null_md = "| feature | nulls |\n|---|---|\n" + "\n".join(
            f"| {k} | {v} |" for k, v in stats["null_counts"].items()
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": stats["rows"],
                "positives": stats["positives"],
                "features": stats["features"],
                "first_as_of": stats["first_as_of"],
                "last_as_of": stats["last_as_of"],
                "null_counts": dg.MetadataValue.md(null_md),
                "path": dg.MetadataValue.path(str(lakehouse.paths.training_set(domain.name))),
            }
        )

    return _training_set


def training_set_check(domain: Domain) -> dg.AssetChecksDefinition:
    """The stored training set still has exactly one row per stored label event."""
    keys = DomainKeys.of(domain)

    @dg.asset_check(
        asset=keys.training_set,
        name=ONE_ROW_PER_LABEL_CHECK,
        blocking=True,
        pool=LAKE_POOL,
        description="The training set has one row per label event, in the same (entity, time) pairs.",
    )
    def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        diff = compare_with_labels(lakehouse.paths, domain)
        return dg.AssetCheckResult(passed=diff["missing"] == 0 and diff["extra"] == 0, metadata=diff)

    return _check
