"""Serving: the BentoML service's prediction log, ingested into the lake, and precomputed batch scores."""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.keys import DomainKeys
from assets.metadata import records_table
from assets.pools import LAKE_POOL
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain
from lakehouse.feature_store.feast_objects import scores_view_name
from lakehouse.serving import scoring
from lakehouse.serving.batch_scores import batch_score, publish_online
from lakehouse.serving.prediction_log import ingest_prediction_log


def prediction_log_asset(domain: Domain) -> dg.AssetsDefinition:
    """The service's prediction log files, gathered into one deduplicated lake table."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.prediction_log,
        group_name=keys.group("serving"),
        pool=LAKE_POOL,
        description=f"Every prediction the {domain.name} service logged (one row per id or feature row), "
        "deduplicated on request_id + entity_id + row_index.",
        kinds={"bentoml", "parquet"},
    )
    def _prediction_log(lakehouse: LakehouseResource):
        stats = ingest_prediction_log(lakehouse.paths, domain.name)
        metadata: dict[str, Any] = {
            "dagster/row_count": stats["rows_out"],
            "path": dg.MetadataValue.path(str(stats["path"])),
            "model_versions": dg.MetadataValue.json(stats["model_versions"]),
            "endpoints": records_table(
                stats["endpoints"],
                ["endpoint", "requests", "rows", "errors", "latency_ms_p50", "latency_ms_p99", "latency_ms_max"],
            ),
        }
        metadata.update({k: v for k, v in stats.items() if k not in {"path", "model_versions", "endpoints"}})
        return dg.MaterializeResult(metadata=metadata)

    return _prediction_log


def batch_scores_asset(domain: Domain) -> dg.AssetsDefinition:
    """Every active entity scored by the champion on its latest features (the precompute serving pattern)."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.batch_scores,
        deps=[keys.champion_model, keys.online_features],
        group_name=keys.group("serving"),
        pool=LAKE_POOL,
        description=f"The champion's score and decision for every {domain.entity} active on the newest day, "
        "from the latest feature values (the ones the online store holds), written to Parquet and to "
        f"the online store's {scores_view_name(domain)} view: served by lookup, not recomputed.",
        kinds={"lightgbm", "feast", "parquet"},
    )
    def _batch_scores(context, lakehouse: LakehouseResource):  # context unannotated: this module defers annotations
        try:
            stats = batch_score(lakehouse.paths, domain)
        except scoring.NoChampionError:
            # Before the first model (a publish run ahead of the first retraining) there is nothing to score yet.
            reason = f"skipped: {domain.name} has no champion model to score with yet (the retrain job makes one)"
            context.log.info(reason)
            return dg.MaterializeResult(metadata={"status": "skipped", "reason": reason})
        context.log.info(
            f"scored {stats['rows']:,} {domain.entity}s with {stats['model_version']}: "
            f"{stats['positives']:,} at or above the threshold {stats['threshold']:.4f}"
        )
        online_rows = publish_online(lakehouse.feature_store(), domain, lakehouse.paths)
        context.log.info(f"wrote {online_rows:,} scores to the online store ({scores_view_name(domain)})")
        metadata: dict[str, Any] = {
            "dagster/row_count": stats["rows"],
            "online_rows": online_rows,
            "online_view": scores_view_name(domain),
            "positives": stats["positives"],
            "positive_rate": stats["positive_rate"] or 0.0,
            "threshold": stats["threshold"],
            "model_version": stats["model_version"],
            "path": dg.MetadataValue.path(str(stats["path"])),
            "features_as_of": str(stats["features_as_of"]),
            "scored_at": str(stats["scored_at"]),
        }
        metadata.update({k: stats[k] for k in ("score_mean", "score_p50", "score_p90") if stats[k] is not None})
        return dg.MaterializeResult(metadata=metadata)

    return _batch_scores


def bento_asset(domain: Domain) -> dg.AssetsDefinition:
    """`bentoml build` of the domain's service pinned to the champion: every champion gets a deployable bento."""
    keys = DomainKeys.of(domain)

    @dg.asset(
        key=keys.bento,
        deps=[keys.champion_model],
        group_name=keys.group("serving"),
        pool=LAKE_POOL,
        description=f"The {domain.name} BentoML service packaged by `bentoml build`, pinned to the champion "
        "(bento version = model version; rebuilt only when the champion changes).",
        kinds={"bentoml"},
    )
    def _bento(context, lakehouse: LakehouseResource):  # context unannotated: this module defers annotations
        from lakehouse.ml import model_registry
        from lakehouse.serving.packaging import build_bento

        champion = model_registry.champion(lakehouse.paths, domain.name)
        if champion is None:
            raise dg.Failure(
                description=f"no {domain.name} champion to package: train and promote one first "
                f"(the {domain.name}/champion_model asset)"
            )
        bento = build_bento(lakehouse.paths, domain, champion)
        context.log.info(
            f"{'reused' if bento['reused'] else 'built'} bento {bento['tag']} for {champion}"
            + ("" if bento["reused"] else f" in {bento['build_seconds']:.1f}s")
        )
        return dg.MaterializeResult(
            metadata={
                "bento": bento["tag"],
                "model": champion,
                "reused": bento["reused"],
                "build_seconds": bento["build_seconds"],
                "files": bento["files"],
                "size_bytes": bento["bytes"],
                "path": dg.MetadataValue.path(str(bento["path"])),
                "serve": dg.MetadataValue.md(f"```\n{bento['serve_command']}\n```"),
            }
        )

    return _bento
