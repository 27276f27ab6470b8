"""The one Dagster entry point: every domain's assets, checks, jobs and sensors."""

import dagster as dg

from assets.feature_store import online_asset, online_freshness_check, registry_asset
from assets.features import catalog_asset, feature_asset, spine_asset
from assets.ingestion import bronze_asset
from assets.jobs import all_job, landing_jobs, publish_job, retrain_job, update_job
from assets.models import candidate_asset, champion_asset, model_card_asset
from assets.monitoring import drift_asset, performance_asset, skew_asset
from assets.resources import LakehouseResource
from assets.sensors import landing_sensor, publish_sensor, retraining_sensor
from assets.serving import batch_scores_asset, bento_asset, prediction_log_asset
from assets.training import labels_asset, training_set_asset, training_set_check
from assets.validation import silver_asset, validated_asset
from lakehouse.declarations.domain import Domain
from lakehouse.domains import load_domains


def domain_definitions(domain: Domain) -> dg.Definitions:
    """The whole asset graph of one domain, built from its declaration."""
    assets = [
        *(bronze_asset(domain, s) for s in domain.sources),
        *(validated_asset(domain, s) for s in domain.sources),
        *(silver_asset(domain, s) for s in domain.sources),
        spine_asset(domain),
        *(feature_asset(domain, v) for v in domain.feature_views),
        catalog_asset(domain),
        registry_asset(domain),
        online_asset(domain),
        labels_asset(domain),
        training_set_asset(domain),
        candidate_asset(domain),
        champion_asset(domain),
        model_card_asset(domain),
        prediction_log_asset(domain),
        batch_scores_asset(domain),
        bento_asset(domain),
        drift_asset(domain),
        performance_asset(domain),
        skew_asset(domain),
    ]
    landing = landing_jobs(domain)
    return dg.Definitions(
        assets=assets,
        asset_checks=[online_freshness_check(domain), training_set_check(domain)],
        jobs=[*landing, publish_job(domain), retrain_job(domain), update_job(domain), all_job(domain)],
        sensors=[landing_sensor(domain, landing), publish_sensor(domain), retraining_sensor(domain)],
    )


def build_definitions(data_root: str = "") -> dg.Definitions:
    """All domains, sharing one lakehouse resource (empty data_root: $LAKEHOUSE_DATA_ROOT or data/)."""
    return dg.Definitions.merge(
        *(domain_definitions(d) for d in load_domains().values()),
        # One process per run, not per step: on a laptop a step's process start-up (imports of
        # Dagster, Feast, pandera) costs more than the step, and the lake has one writer at a time anyway.
        dg.Definitions(
            resources={"lakehouse": LakehouseResource(data_root=data_root)}, executor=dg.in_process_executor
        ),
    )


defs = build_definitions()
