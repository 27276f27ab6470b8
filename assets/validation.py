"""Validation and silver: typed, checked, deduplicated tables (one pair of assets per raw source)."""

import dagster as dg

from assets.keys import QUARANTINE_RATE_CHECK, ROW_ACCOUNTING_CHECK, DomainKeys
from assets.metadata import markdown_list, records_table, source_schema
from assets.pools import source_pool
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain, Source
from lakehouse.lake.ingestion import manifest
from lakehouse.lake.silver import build_silver
from lakehouse.lake.validation import release_batches, validate_new_batches, validation_reports

REPORT_COLUMNS = ["batch_id", "file", "rows_in", "rows_valid", "rows_quarantined", "quarantine_rate", "status"]


class ValidationConfig(dg.Config):
    """Override the limit on a batch's share of bad rows, or publish held batches after review."""

    max_quarantine_rate: float | None = None
    release_batches: list[str] = []  # held batch ids whose valid rows may now reach silver


def validated_asset(domain: Domain, source: Source) -> dg.AssetsDefinition:
    """The validated asset of one source, with its blocking quarantine-rate check and row accounting."""
    keys = DomainKeys.of(domain)
    key = keys.validated(source)

    @dg.asset(
        key=key,
        deps=[keys.bronze(source)],
        group_name=keys.group("validation"),
        pool=source_pool(domain, source),
        description=f"{source.name} batches checked by pandera: valid rows, plus quarantined rows with reasons.",
        kinds={"pandera", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(
                QUARANTINE_RATE_CHECK,
                asset=key,
                blocking=True,
                description="No batch validated in this run has more bad rows than the limit.",
            ),
            dg.AssetCheckSpec(
                ROW_ACCOUNTING_CHECK,
                asset=key,
                description="rows_in == rows_valid + rows_quarantined for every batch in the manifest.",
            ),
        ],
    )
    def _validated(context: dg.AssetExecutionContext, config: ValidationConfig, lakehouse: LakehouseResource):
        paths = lakehouse.paths
        limit = domain.max_quarantine_rate if config.max_quarantine_rate is None else config.max_quarantine_rate
        for r in release_batches(paths, source.name, config.release_batches):
            context.log.warning(f"released held batch {r['batch_id']} ({r['file']}) by request")
        new = validate_new_batches(paths, source, limit, domain.min_held_rows)
        held = [r for r in new if r["status"] == "held"]
        for r in held:
            context.log.error(f"held {r['batch_id']} ({r['file']}): {r['quarantine_rate']:.1%} bad rows > {limit:.1%}")
        reports = validation_reports(paths, source.name)
        batches = {b["batch_id"]: b["rows"] for b in manifest(paths, source.name)}
        unbalanced = [
            r["batch_id"]
            for r in reports
            if r["rows_in"] != r["rows_valid"] + r["rows_quarantined"] or r["rows_in"] != batches.get(r["batch_id"])
        ]
        unvalidated = sorted(set(batches) - {r["batch_id"] for r in reports})
        quarantined = sum(r["rows_quarantined"] for r in reports)
        reasons: dict[str, int] = {}
        for r in new:
            for reason, count in r["top_reasons"]:
                reasons[reason] = reasons.get(reason, 0) + count
        return dg.MaterializeResult(
            metadata={
                "batches_validated": len(new),
                "rows_in": sum(r["rows_in"] for r in new),
                "rows_valid": sum(r["rows_valid"] for r in new),
                "rows_quarantined": sum(r["rows_quarantined"] for r in new),
                "held_batches": len(held),
                "total_rows_quarantined": quarantined,
                "dagster/row_count": sum(r["rows_valid"] for r in reports if r["status"] == "published"),
                "dagster/column_schema": source_schema(source),
                "batches": records_table(new, REPORT_COLUMNS),
                "top_quarantine_reasons": markdown_list(
                    [f"{n} x {reason}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]]
                ),
                "quarantine_folder": dg.MetadataValue.path(str(paths.quarantine(source.name))),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=QUARANTINE_RATE_CHECK,
                    passed=not held,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "limit": limit,
                        "held": markdown_list(
                            [f"{r['batch_id']} ({r['file']}): {r['quarantine_rate']:.1%}" for r in held]
                        ),
                    },
                    description=f"{len(held)} of {len(new)} new batches held back from silver",
                ),
                dg.AssetCheckResult(
                    check_name=ROW_ACCOUNTING_CHECK,
                    passed=not unbalanced and not unvalidated,
                    metadata={
                        "unbalanced_batches": markdown_list(unbalanced),
                        "unvalidated_batches": markdown_list(unvalidated),
                        "batches_checked": len(reports),
                    },
                ),
            ],
        )

    return _validated


def silver_asset(domain: Domain, source: Source) -> dg.AssetsDefinition:
    """The silver table of one source."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.silver(source),
        deps=[keys.validated(source)],
        group_name=keys.group("silver"),
        pool=source_pool(domain, source),
        description=f"Typed, deduplicated {source.name} (newest version per {', '.join(source.silver_key)}).",
        kinds={"duckdb", "parquet"},
    )
    def _silver(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        paths = lakehouse.paths
        stats = build_silver(paths, source)
        if stats["held_batches"]:
            context.log.warning(f"{len(stats['held_batches'])} held batches excluded: {stats['held_batches']}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": stats["rows"],
                "dagster/column_schema": source_schema(source),
                "rows_in": stats["rows_in"],
                "duplicates_collapsed": stats["duplicates_collapsed"],
                "batches": stats["batches"],
                "held_batches_excluded": len(stats["held_batches"]),
                "path": dg.MetadataValue.path(str(paths.silver(source.name))),
            }
        )

    return _silver
