"""Monitoring: drift against the champion's training data, live performance on matured labels, serving skew.

Each asset records its numbers as metadata (so the UI plots them over time) and carries one check;
the drift and performance checks feed the retraining sensor. With no champion yet each says so and
passes: there is nothing to monitor.
"""

import dagster as dg

from assets.keys import DRIFT_CHECK, PERFORMANCE_CHECK, SKEW_CHECK, DomainKeys
from assets.pools import LAKE_POOL
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain


def _no_champion(domain: Domain, check: str) -> dg.MaterializeResult:
    reason = f"skipped: {domain.name} has no champion model to monitor yet"
    return dg.MaterializeResult(
        metadata={"status": "skipped", "reason": reason},
        check_results=[
            dg.AssetCheckResult(check_name=check, passed=True, description=reason, metadata={"status": "skipped"})
        ],
    )


def drift_asset(domain: Domain) -> dg.AssetsDefinition:
    """Per-feature drift (effect sizes, Evidently) of the newest days and served features vs the champion's training rows."""
    keys = DomainKeys.of(domain)
    key = keys.feature_drift

    @dg.asset(
        key=key,
        deps=[keys.online_features, keys.prediction_log, keys.champion_model],
        group_name=keys.group("monitoring"),
        pool=LAKE_POOL,
        description="Evidently drift per feature (normed Wasserstein / Jensen-Shannon) of the last 7 feature days "
        "plus the features the service was given, against the champion's training rows; the drifted "
        "share is weighted by the champion's feature importance. Thresholds are calibrated on the "
        "reference's own time chunks (noise, and its pace of change extrapolated to the window).",
        kinds={"evidently"},
        check_specs=[
            dg.AssetCheckSpec(
                DRIFT_CHECK,
                asset=key,
                description=(
                    "Fails when drifted features carry more than the allowed share of the champion's importance."
                ),
            )
        ],
    )
    def _drift(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        from lakehouse.ml import model_registry
        from lakehouse.monitoring.drift import domain_drift

        champion = model_registry.champion(lakehouse.paths, domain.name)
        if champion is None:
            return _no_champion(domain, DRIFT_CHECK)
        result = domain_drift(lakehouse.paths, domain, champion)
        context.log.info(f"drift {result.status}: {result.reason}")
        table = "| feature | method | score | threshold | drifted | weight |\n|---|---|---|---|---|---|\n" + "\n".join(
            f"| {f} | {v['method']} | {v['score']:.4f} | {v['threshold']:.4f} | {'yes' if v['drifted'] else ''} | "
            f"{v['weight']:.3f} |"
            for f, v in sorted(result.features.items(), key=lambda kv: -kv[1]["score"])
        )
        metadata = {
            "status": result.status,
            "reason": result.reason,
            "champion": champion,
            "drifted": dg.MetadataValue.json(result.drifted),
            "skipped_features": dg.MetadataValue.json(result.skipped),
            "reference_rows": result.rows.get("reference", 0),
            "current_rows": result.rows.get("current", 0),
            "features": dg.MetadataValue.md(table),
            "thresholds": result.calibration["reason"] if result.calibration else "fixed (DriftConfig)",
            # One float per feature, so the UI plots each feature's drift over materializations.
            **{f"drift/{f}": float(v["score"]) for f, v in result.features.items()},
        }
        if result.drifted_share is not None:
            metadata["drifted_share"] = result.drifted_share
            metadata["weighted_drifted_share"] = result.weighted_drifted_share
        if result.report_path:
            metadata["report"] = dg.MetadataValue.path(result.report_path)
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=DRIFT_CHECK,
                    passed=result.passed is not False,
                    description=f"{result.status}: {result.reason}",
                    metadata={
                        "status": result.status,
                        "drifted": dg.MetadataValue.json(result.drifted),
                        "weighted_drifted_share": result.weighted_drifted_share or 0.0,
                        "max_weighted_drift_share": result.max_weighted_drift_share,
                    },
                )
            ],
        )

    return _drift


def performance_asset(domain: Domain) -> dg.AssetsDefinition:
    """ROC AUC, precision, recall and F1 of the daily batch scores per day and model version, on matured labels."""
    keys = DomainKeys.of(domain)
    key = keys.live_performance

    @dg.asset(
        key=key,
        deps=[keys.batch_scores, keys.label_events, keys.champion_model],
        group_name=keys.group("monitoring"),
        pool=LAKE_POOL,
        description="Daily batch scores joined to labels as they mature; metrics per day and model version "
        "only for days whose label horizon has passed.",
        kinds={"lightgbm"},
        check_specs=[
            dg.AssetCheckSpec(
                PERFORMANCE_CHECK,
                asset=key,
                description=(
                    "Fails when the champion's live ROC AUC falls below its hold-out AUC by more than the margin."
                ),
            )
        ],
    )
    def _performance(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        from lakehouse.ml import model_registry
        from lakehouse.monitoring.performance import domain_performance

        champion = model_registry.champion(lakehouse.paths, domain.name)
        if champion is None:
            return _no_champion(domain, PERFORMANCE_CHECK)
        live, check = domain_performance(lakehouse.paths, domain, champion)
        context.log.info(f"performance: {check['reason']}")
        matured = [w for w in live["windows"] if w["status"] == "ok"]
        rows = "\n".join(
            f"| {w['day']} | {w['model_version']} | {w['labelled']} | {w['roc_auc']:.4f} | "
            f"{_fmt(w['precision'])} | {_fmt(w['recall'])} | {_fmt(w['f1'])} |"
            for w in matured[-30:]
        )
        metadata = {
            "champion": champion,
            "matured_windows": len(matured),
            "windows": len(live["windows"]),
            "labels_known_until": str(live["labels_known_until"]),
            "by_version": dg.MetadataValue.json(live["by_version"]),
            "daily": dg.MetadataValue.md(
                "| day | model | labelled | ROC AUC | precision | recall | F1 |\n|---|---|---|---|---|---|---|\n" + rows
                if rows
                else "no matured day yet"
            ),
            **{k: float(check[k]) for k in ("live_auc", "holdout_auc", "min_auc") if check.get(k) is not None},
        }
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=PERFORMANCE_CHECK,
                    passed=check["passed"] is not False,
                    description=("skipped: " if check["passed"] is None else "") + check["reason"],
                    metadata={
                        k: v for k, v in check.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
                    },
                )
            ],
        )

    return _performance


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def skew_asset(domain: Domain) -> dg.AssetsDefinition:
    """Served feature values vs Feast's point-in-time recompute for a sample of logged online predictions."""
    keys = DomainKeys.of(domain)
    key = keys.serving_skew

    @dg.asset(
        key=key,
        deps=[keys.prediction_log, keys.champion_model],
        group_name=keys.group("monitoring"),
        pool=LAKE_POOL,
        description="Training/serving skew: a sample of logged predict_ids rows, their served features compared "
        "with get_historical_features at the time the online values were written.",
        kinds={"feast"},
        check_specs=[
            dg.AssetCheckSpec(SKEW_CHECK, asset=key, description="Fails when served and recomputed features differ.")
        ],
    )
    def _skew(context: dg.AssetExecutionContext, lakehouse: LakehouseResource):
        from lakehouse.ml import model_registry
        from lakehouse.monitoring.skew import domain_skew

        champion = model_registry.champion(lakehouse.paths, domain.name)
        if champion is None:
            return _no_champion(domain, SKEW_CHECK)
        result = domain_skew(lakehouse.paths, domain, lakehouse.feature_store(), champion)
        context.log.info(f"skew: {result['reason']}")
        metadata = {"reason": result["reason"], "sample_rows": result.get("sample_rows", 0)}
        for name in ("compared_rows", "mismatched_rows", "not_recomputed"):
            if name in result:
                metadata[name] = result[name]
        if result.get("features"):
            metadata["mismatches"] = dg.MetadataValue.json({f: v["mismatches"] for f, v in result["features"].items()})
        if result.get("examples"):
            metadata["examples"] = dg.MetadataValue.json(result["examples"])
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=[
                dg.AssetCheckResult(
                    check_name=SKEW_CHECK,
                    passed=result["passed"] is not False,
                    description=("skipped: " if result["passed"] is None else "") + result["reason"],
                )
            ],
        )

    return _skew
