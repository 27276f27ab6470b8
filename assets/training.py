"""Training data: label events and the point-in-time training set from Feast."""

import dagster as dg

from assets.feature_store import registry_key
from assets.features import spine_key
from assets.pools import LAKE_POOL
from assets.resources import LakehouseResource
from assets.validation import silver_key
from lakehouse.domain import Domain
from lakehouse.features import build_labels
from lakehouse.training_set import build_training_set, compare_with_labels


def labels_key(domain: Domain) -> dg.AssetKey:
    return dg.AssetKey([domain.name, "label_events"])


def training_set_key(domain: Domain) -> dg.AssetKey:
    return dg.AssetKey([domain.name, "training_set"])


def labels_asset(domain: Domain) -> dg.AssetsDefinition:
    """Label events: (entity, as-of time, label) for every window whose outcome is known."""

    @dg.asset(
        key=labels_key(domain),
        deps=[spine_key(domain), *(silver_key(domain, domain.source(s)) for s in domain.label_sources)],
        group_name=f"{domain.name}_training",
        pool=LAKE_POOL,
        description=f"Label events for '{domain.prediction}' ({domain.label_name}), matured windows only.",
        kinds={"duckdb", "parquet"},
    )
    def _labels(lakehouse: LakehouseResource):
        stats = build_labels(lakehouse.paths, domain)
        return dg.MaterializeResult(metadata={
            "dagster/row_count": stats["rows"],
            "positives": stats["positives"],
            "positive_rate": stats["positive_rate"] or 0.0,
            "as_of_dates": stats["as_of_dates"],
        })

    return _labels


def training_set_asset(domain: Domain) -> dg.AssetsDefinition:
    """Feast's point-in-time join of the feature service onto the label events."""

    @dg.asset(
        key=training_set_key(domain),
        deps=[labels_key(domain), registry_key(domain)],
        group_name=f"{domain.name}_training",
        pool=LAKE_POOL,
        description=f"One row per label event with the {domain.feature_service} features known at its time.",
        kinds={"feast", "duckdb", "parquet"},
    )
    def _training_set(lakehouse: LakehouseResource):
        stats = build_training_set(lakehouse.feature_store(), domain, lakehouse.paths)
        null_md = "| feature | nulls |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in stats["null_counts"].items())
        return dg.MaterializeResult(metadata={
            "dagster/row_count": stats["rows"],
            "positives": stats["positives"],
            "features": stats["features"],
            "first_as_of": stats["first_as_of"],
            "last_as_of": stats["last_as_of"],
            "null_counts": dg.MetadataValue.md(null_md),
            "path": dg.MetadataValue.path(str(lakehouse.paths.training_set(domain.name))),
        })

    return _training_set


def training_set_check(domain: Domain) -> dg.AssetChecksDefinition:
    """The stored training set still has exactly one row per stored label event."""

    @dg.asset_check(asset=training_set_key(domain), name="one_row_per_label_check", blocking=True, pool=LAKE_POOL,
                    description="The training set has one row per label event, in the same (entity, time) pairs.")
    def _check(lakehouse: LakehouseResource) -> dg.AssetCheckResult:
        diff = compare_with_labels(lakehouse.paths, domain)
        return dg.AssetCheckResult(passed=diff["missing"] == 0 and diff["extra"] == 0, metadata=diff)

    return _check
