"""Serving: the BentoML service's prediction log, ingested into the lake, and precomputed batch scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from assets.resources import LakehouseResource
from lakehouse import scoring
from lakehouse.batch_scores import batch_score, publish_online
from lakehouse.domain import Domain
from lakehouse.feast_defs import scores_view_name
from lakehouse.io import write_parquet_atomic
from lakehouse.paths import LakePaths
from lakehouse.prediction_log import SCHEMA, log_files

DEDUP_KEY = ["request_id", "customer_id", "row_index"]


def prediction_log_key(domain: Domain) -> dg.AssetKey:
    return dg.AssetKey([domain.name, "prediction_log"])


def prediction_log_table(paths: LakePaths) -> Path:
    return paths.lake / "serving" / "prediction_log.parquet"


def ingest_prediction_log(paths: LakePaths) -> dict[str, Any]:
    """Append the log files not yet in the lake table to it (dedup on request_id+customer_id+row_index).

    The table keeps a source_file column, so a file already ingested is not read again. The log files
    are left in place (their retention is not handled here).
    """
    table = prediction_log_table(paths)
    existing = pl.read_parquet(table) if table.exists() else pl.DataFrame(schema={**SCHEMA, "source_file": pl.String()})
    seen = set(existing["source_file"].unique().to_list())
    new_files = [f for f in log_files(paths.prediction_log) if f.name not in seen]
    frames = [pl.read_parquet(f).with_columns(source_file=pl.lit(f.name)) for f in new_files]
    new = (pl.concat(frames, how="diagonal_relaxed") if frames else existing.clear())
    new = new.select([pl.col(c).cast(t) if c in new.columns else pl.lit(None, dtype=t).alias(c)
                      for c, t in {**SCHEMA, "source_file": pl.String()}.items()])
    combined = pl.concat([existing, new], how="vertical_relaxed")
    out = combined.unique(subset=DEDUP_KEY, keep="first", maintain_order=True).sort("logged_at", maintain_order=True)
    if new_files or not table.exists():
        write_parquet_atomic(out, table)
    scored = out.filter(pl.col("score").is_not_null())
    new_scored = new.filter(pl.col("score").is_not_null())

    def stats(frame: pl.DataFrame, prefix: str) -> dict[str, float]:
        if frame.is_empty():
            return {}
        s = frame["score"]
        return {f"{prefix}score_mean": float(s.mean()), f"{prefix}score_min": float(s.min()),
                f"{prefix}score_p50": float(s.quantile(0.5)), f"{prefix}score_p90": float(s.quantile(0.9)),
                f"{prefix}score_max": float(s.max()),
                f"{prefix}positive_rate": float(frame["decision"].cast(pl.Float64).mean())}

    return {
        "path": table,
        "new_files": len(new_files),
        "rows_in": new.height,
        "rows_before": existing.height,
        "rows_out": out.height,
        "duplicates_dropped": combined.height - out.height,
        "errors": int(out["error"].is_not_null().sum()),
        "requests": out["request_id"].n_unique(),
        "model_versions": sorted(v for v in out["model_version"].unique().to_list() if v is not None),
        "endpoints": {str(k): int(v) for k, v in out.group_by("endpoint").len().rows()},
        **stats(scored, ""),
        **stats(new_scored, "new_"),
    }


def prediction_log_asset(domain: Domain) -> dg.AssetsDefinition:
    """The service's prediction log files, gathered into one deduplicated lake table."""

    @dg.asset(
        key=prediction_log_key(domain),
        group_name=f"{domain.name}_serving",
        description=f"Every prediction the {domain.name} service logged (one row per id or feature row), "
                    "deduplicated on request_id + customer_id + row_index.",
        kinds={"bentoml", "parquet"},
    )
    def _prediction_log(lakehouse: LakehouseResource):
        stats = ingest_prediction_log(lakehouse.paths)
        metadata: dict[str, Any] = {
            "dagster/row_count": stats["rows_out"],
            "path": dg.MetadataValue.path(str(stats["path"])),
            "model_versions": dg.MetadataValue.json(stats["model_versions"]),
            "endpoints": dg.MetadataValue.json(stats["endpoints"]),
        }
        metadata.update({k: v for k, v in stats.items()
                         if k not in {"path", "model_versions", "endpoints"}})
        return dg.MaterializeResult(metadata=metadata)

    return _prediction_log


def batch_scores_key(domain: Domain) -> dg.AssetKey:
    return dg.AssetKey([domain.name, "batch_scores"])


def batch_scores_asset(domain: Domain) -> dg.AssetsDefinition:
    """Every active entity scored by the champion on its latest features (the precompute serving pattern)."""

    @dg.asset(
        key=batch_scores_key(domain),
        deps=[dg.AssetKey([domain.name, "champion_model"]), dg.AssetKey([domain.name, "online_features"])],
        group_name=f"{domain.name}_serving",
        description=f"The champion's score and decision for every {domain.entity} active on the newest day, "
                    "from the latest feature values (the ones the online store holds), written to Parquet and to "
                    f"the online store's {scores_view_name(domain)} view: served by lookup, not recomputed.",
        kinds={"lightgbm", "feast", "parquet"},
    )
    def _batch_scores(context, lakehouse: LakehouseResource):  # context unannotated: this module defers annotations
        try:
            stats = batch_score(lakehouse.paths, domain)
        except scoring.NoChampionError as e:
            raise dg.Failure(description=f"cannot batch-score {domain.name}: no champion model to score with. "
                                         f"Train and promote one first (the {domain.name}/champion_model asset). "
                                         f"{e}") from e
        context.log.info(f"scored {stats['rows']:,} {domain.entity}s with {stats['model_version']}: "
                         f"{stats['positives']:,} at or above the threshold {stats['threshold']:.4f}")
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


def bento_key(domain: Domain) -> dg.AssetKey:
    return dg.AssetKey([domain.name, "bento"])


def bento_asset(domain: Domain) -> dg.AssetsDefinition:
    """`bentoml build` of the domain's service pinned to the champion: every champion gets a deployable bento."""

    @dg.asset(
        key=bento_key(domain),
        deps=[dg.AssetKey([domain.name, "champion_model"])],
        group_name=f"{domain.name}_serving",
        description=f"The {domain.name} BentoML service packaged by `bentoml build`, pinned to the champion "
                    "(bento version = model version; rebuilt only when the champion changes).",
        kinds={"bentoml"},
    )
    def _bento(context, lakehouse: LakehouseResource):  # context unannotated: this module defers annotations
        from lakehouse import registry
        from lakehouse.packaging import build_bento

        champion = registry.champion(lakehouse.paths, domain.name)
        if champion is None:
            raise dg.Failure(description=f"no {domain.name} champion to package: train and promote one first "
                                         f"(the {domain.name}/champion_model asset)")
        bento = build_bento(lakehouse.paths, domain, champion)
        context.log.info(f"{'reused' if bento['reused'] else 'built'} bento {bento['tag']} for {champion}"
                         + ("" if bento["reused"] else f" in {bento['build_seconds']:.1f}s"))
        return dg.MaterializeResult(metadata={
            "bento": bento["tag"],
            "model": champion,
            "reused": bento["reused"],
            "build_seconds": bento["build_seconds"],
            "files": bento["files"],
            "size_bytes": bento["bytes"],
            "path": dg.MetadataValue.path(str(bento["path"])),
            "serve": dg.MetadataValue.md(f"```\n{bento['serve_command']}\n```"),
        })

    return _bento
