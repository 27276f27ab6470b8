"""Jobs: landing (one per source, stops at silver), publishing, retraining, and everything of a domain."""

import dagster as dg

from assets.keys import DomainKeys
from lakehouse.declarations.domain import Domain


def landing_jobs(domain: Domain) -> list:
    """Per source: ingest, validate and append a file to silver.

    Features and the online store are the publish job's, once per burst: every feature view is rebuilt
    from all sources, and a run process pays seconds of imports (Feast's above all) before any work.
    """
    keys = DomainKeys.of(domain)
    per_file = dg.AssetSelection.groups(*(keys.group(g) for g in ("ingestion", "validation", "silver")))
    return [
        dg.define_asset_job(
            keys.landing_job(s.name),
            selection=dg.AssetSelection.assets(keys.bronze(s)).downstream() & per_file,
            description=f"Ingest new {s.name} files, validate them and append them to silver.",
        )
        for s in domain.sources
    ]


def publish_job(domain: Domain):
    """Features, the Feast registry and online store, the prediction log, the day's batch scores, and monitoring."""
    keys = DomainKeys.of(domain)
    return dg.define_asset_job(
        keys.publish_job,
        selection=dg.AssetSelection.groups(*(keys.group(g) for g in ("features", "feature_store", "monitoring")))
        | dg.AssetSelection.assets(keys.prediction_log, keys.batch_scores),
        description="Rebuild the features and publish them to Feast's online store, ingest the prediction log and "
        "score the newest day (precomputed scores, kept per day for live performance); then drift, live "
        "performance and training/serving skew with their checks.",
    )


def retraining_steps(keys: DomainKeys) -> list[dg.AssetKey]:
    """What a retraining materializes, in order: labels, training set, candidate, gate, card, scores, bento."""
    return [
        keys.label_events,
        keys.training_set,
        keys.model_candidate,
        keys.champion_model,
        keys.model_card,
        keys.batch_scores,
        keys.bento,
    ]


def retrain_job(domain: Domain):
    """Labels -> training set -> candidate -> gate -> model card, bento and refreshed batch scores."""
    keys = DomainKeys.of(domain)
    return dg.define_asset_job(
        keys.retrain_job,
        selection=dg.AssetSelection.assets(*retraining_steps(keys)),
        description="Retrain, gate against the champion; on promotion the bento and the "
        "precomputed scores follow (the running service switches by itself).",
    )


def update_job(domain: Domain):
    """Everything of a domain but training: land, validate, publish, score and monitor (`lakehouse run` first)."""
    keys = DomainKeys.of(domain)
    training_only = set(retraining_steps(keys)) - {keys.batch_scores}
    return dg.define_asset_job(
        keys.update_job,
        selection=dg.AssetSelection.key_prefixes([domain.name]) - dg.AssetSelection.assets(*training_only),
        description=f"Everything of {domain.name} but training; `lakehouse run {domain.name}` runs it, then takes the "
        "retraining sensor's decision and runs the retrain job when it says so.",
    )


def all_job(domain: Domain):
    """Every asset and check of a domain, training included: 'Materialize all' for one domain."""
    keys = DomainKeys.of(domain)
    return dg.define_asset_job(
        keys.all_job,
        selection=dg.AssetSelection.key_prefixes([domain.name]),
        description=f"Every asset and check of {domain.name}, training included.",
    )
