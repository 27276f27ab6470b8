"""Ingestion: landing files become immutable bronze batches (one asset per raw source)."""

import dagster as dg

from assets.keys import DomainKeys
from assets.metadata import markdown_list, records_table
from assets.pools import source_pool
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain, Source
from lakehouse.lake.ingestion import ingest_source, manifest, rejected_files


class IngestConfig(dg.Config):
    """Which landing files to ingest; empty means every file in the source's landing folder."""

    files: list[str] = []


def bronze_asset(domain: Domain, source: Source) -> dg.AssetsDefinition:
    """The bronze asset of one raw source."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.bronze(source),
        group_name=keys.group("ingestion"),
        pool=source_pool(domain, source),
        description=f"Raw {source.name} batches, one immutable Parquet file per landing file. {source.description}",
        kinds={"parquet"},
    )
    def _bronze(context: dg.AssetExecutionContext, config: IngestConfig, lakehouse: LakehouseResource):
        paths = lakehouse.paths
        result = ingest_source(paths, source, config.files or None)
        for r in result.skipped:
            context.log.debug(f"skipped {r['file']}: {r['reason']}")
        context.log.info(
            f"{source.name}: {len(result.ingested)} new batches "
            f"({sum(r['rows'] for r in result.ingested):,} rows), {len(result.skipped)} files already "
            f"ingested or rejected, {len(result.rejected)} rejected now"
        )
        for r in result.rejected:
            context.log.warning(f"rejected {r['file']}: {r['reason']}")
        batches = manifest(paths, source.name)
        return dg.MaterializeResult(
            metadata={
                "new_batches": len(result.ingested),
                "new_rows": sum(r["rows"] for r in result.ingested),
                "skipped_files": len(result.skipped),
                "rejected_files": len(result.rejected),
                "total_batches": len(batches),
                "dagster/row_count": sum(r["rows"] for r in batches),
                "ingested": records_table(result.ingested, ["batch_id", "file", "rows", "sha256", "arrived_at"]),
                "rejected": markdown_list([f"`{r['file']}`: {r['reason']}" for r in result.rejected]),
                "skipped": markdown_list([f"`{r['file']}`: {r['reason']}" for r in result.skipped[:50]]),
                "all_rejected_files": len(rejected_files(paths, source.name)),
                "landing_folder": dg.MetadataValue.path(str(paths.landing_folder(source.landing_folder))),
            }
        )

    return _bronze
