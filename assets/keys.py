"""Every name a domain's Dagster objects go by: asset keys, groups, checks, jobs and sensors.

The one place to rename one: asset factories, jobs, sensors, the command line and the tests all read
them from here, and tests/test_graph_snapshot.py shows the change as a reviewed diff.
"""

from dataclasses import dataclass

import dagster as dg

from lakehouse.declarations.domain import Domain, FeatureView, Source

# Check names are shared by every domain; RetrainPolicy.retrain_on_failed_checks names the first two.
DRIFT_CHECK = "drift_check"
PERFORMANCE_CHECK = "performance_check"
SKEW_CHECK = "skew_check"
QUARANTINE_RATE_CHECK = "quarantine_rate_check"
ROW_ACCOUNTING_CHECK = "row_accounting_check"
ONLINE_FRESHNESS_CHECK = "online_freshness_check"
ONE_ROW_PER_LABEL_CHECK = "one_row_per_label_check"
PROMOTION_GATE_CHECK = "promotion_gate_check"


@dataclass(frozen=True)
class DomainKeys:
    """The names of one domain's assets, groups, jobs and sensors, all under its name."""

    name: str
    entity: str

    @classmethod
    def of(cls, domain: Domain) -> "DomainKeys":
        return cls(domain.name, domain.entity)

    def _key(self, asset: str) -> dg.AssetKey:
        return dg.AssetKey([self.name, asset])

    def group(self, stage: str) -> str:
        """The asset group of a lifecycle stage ("ingestion", "validation", ..., "monitoring")."""
        return f"{self.name}_{stage}"

    # ---------------------------------------------------------------------------------------- lake
    def bronze(self, source: Source) -> dg.AssetKey:
        return self._key(f"{source.name}_bronze")

    def validated(self, source: Source) -> dg.AssetKey:
        return self._key(f"{source.name}_validated")

    def silver(self, source: Source) -> dg.AssetKey:
        return self._key(f"{source.name}_silver")

    @property
    def spine(self) -> dg.AssetKey:
        return self._key(f"{self.entity}_spine")

    def features(self, view: FeatureView) -> dg.AssetKey:
        return self._key(f"{view.name}_features")

    @property
    def lake_catalog(self) -> dg.AssetKey:
        return self._key("lake_catalog")

    # ------------------------------------------------------------------------------- feature store
    @property
    def feast_registry(self) -> dg.AssetKey:
        return self._key("feast_registry")

    @property
    def online_features(self) -> dg.AssetKey:
        return self._key("online_features")

    # ------------------------------------------------------------------------------------------ ml
    @property
    def label_events(self) -> dg.AssetKey:
        return self._key("label_events")

    @property
    def training_set(self) -> dg.AssetKey:
        return self._key("training_set")

    @property
    def model_candidate(self) -> dg.AssetKey:
        return self._key("model_candidate")

    @property
    def champion_model(self) -> dg.AssetKey:
        return self._key("champion_model")

    @property
    def model_card(self) -> dg.AssetKey:
        return self._key("model_card")

    # ------------------------------------------------------------------------------------- serving
    @property
    def prediction_log(self) -> dg.AssetKey:
        return self._key("prediction_log")

    @property
    def batch_scores(self) -> dg.AssetKey:
        return self._key("batch_scores")

    @property
    def bento(self) -> dg.AssetKey:
        return self._key("bento")

    # ---------------------------------------------------------------------------------- monitoring
    @property
    def feature_drift(self) -> dg.AssetKey:
        return self._key("feature_drift")

    @property
    def live_performance(self) -> dg.AssetKey:
        return self._key("live_performance")

    @property
    def serving_skew(self) -> dg.AssetKey:
        return self._key("serving_skew")

    @property
    def monitoring_checks(self) -> dict[str, dg.AssetCheckKey]:
        """Every monitoring check by name (what the retraining policy may watch)."""
        return {
            DRIFT_CHECK: dg.AssetCheckKey(self.feature_drift, DRIFT_CHECK),
            PERFORMANCE_CHECK: dg.AssetCheckKey(self.live_performance, PERFORMANCE_CHECK),
            SKEW_CHECK: dg.AssetCheckKey(self.serving_skew, SKEW_CHECK),
        }

    # ------------------------------------------------------------------------------ jobs, sensors
    def landing_job(self, source: str) -> str:
        return f"{self.name}_{source}_landing_job"

    @property
    def publish_job(self) -> str:
        return f"{self.name}_publish_job"

    @property
    def retrain_job(self) -> str:
        return f"{self.name}_retrain_job"

    @property
    def update_job(self) -> str:
        return f"{self.name}_update_job"

    @property
    def all_job(self) -> str:
        return f"{self.name}_all_job"

    @property
    def landing_sensor(self) -> str:
        return f"{self.name}_landing_sensor"

    @property
    def publish_sensor(self) -> str:
        return f"{self.name}_publish_sensor"

    @property
    def retraining_sensor(self) -> str:
        return f"{self.name}_retraining_sensor"
