"""Domain declarations: everything model-specific, stated once as data.

The lifecycle machinery (ingestion, validation, features, Feast, training) is generic and reads these.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

DType = Literal["int64", "float64", "string", "bool", "date", "datetime"]
RiskCategory = Literal["unacceptable", "high", "limited", "minimal"]


@dataclass(frozen=True)
class Column:
    """One raw column: its type and the values it may take."""

    name: str
    dtype: DType
    nullable: bool = False
    ge: float | None = None
    le: float | None = None
    isin: tuple[str, ...] | None = None
    not_in_future: bool = False
    description: str = ""
    unit: str = ""  # a suffix numbers are written with in text files ("%", " kg"): stripped before parsing


@dataclass(frozen=True)
class Source:
    """A raw source: producers drop one file per period into data/landing/<landing folder>/."""

    name: str
    description: str
    columns: tuple[Column, ...]
    unique_key: tuple[str, ...]  # unique within a batch; later duplicates are quarantined
    silver_key: tuple[str, ...]  # one silver row per key; the newest version wins
    version_column: str | None = None  # orders versions of a key; ties go to the latest batch
    formats: tuple[str, ...] = ("csv", "parquet")
    landing: str = ""  # its folder under data/landing/ ("" = the source's name)
    ignored_columns: tuple[str, ...] = ()  # allowed in files, kept in bronze, never typed or used
    # Columns a file may lack, read as nulls: values not known when it was written (an outcome that comes later).
    optional_columns: tuple[str, ...] = ()

    @property
    def landing_folder(self) -> str:
        return self.landing or self.name

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class Feature:
    """One feature column of a feature view."""

    name: str
    dtype: Literal["int64", "float64", "string"]
    description: str = ""


@dataclass(frozen=True)
class FeatureView:
    """An entity-keyed, event-timestamped feature table computed by one DuckDB query.

    The query reads `spine` (entity, day) and the silver tables named in `sources` as relations of
    the same names, and returns the entity key, `event_timestamp` and the features.
    """

    name: str
    description: str
    sources: tuple[str, ...]
    features: tuple[Feature, ...]
    sql: str
    ttl: timedelta = timedelta(days=2)


# Evidently's method names. Normed Wasserstein = earth mover's distance / reference std: "how many
# reference standard deviations the distribution moved". Jensen-Shannon distance is in [0, 1].
NUMERIC_METHOD = "wasserstein"
CATEGORICAL_METHOD = "jensenshannon"
# Evidently's own defaults for both methods. Two samples of 50,000 rows of one distribution score
# about 0.01, a shift of a third of a standard deviation about 0.3.
NUMERIC_THRESHOLD = 0.1
CATEGORICAL_THRESHOLD = 0.1
# The check fails when drifted features carry more than this share of the champion's importance.
MAX_WEIGHTED_DRIFT_SHARE = 0.3
# Below ~1,000 rows the normed Wasserstein distance between two samples of the *same* normal
# distribution reaches 0.1 by chance (measured: mean 0.13, max 0.26 at 200 rows; max 0.11 at 1,000).
MIN_DRIFT_ROWS = 1000


@dataclass(frozen=True)
class DriftConfig:
    """Drift methods and thresholds: module defaults, overridable per feature."""

    numeric_method: str = NUMERIC_METHOD
    categorical_method: str = CATEGORICAL_METHOD
    numeric_threshold: float = NUMERIC_THRESHOLD
    categorical_threshold: float = CATEGORICAL_THRESHOLD
    methods: Mapping[str, str] = field(default_factory=dict)  # feature -> Evidently method name
    thresholds: Mapping[str, float] = field(default_factory=dict)  # feature -> threshold
    max_weighted_drift_share: float = MAX_WEIGHTED_DRIFT_SHARE  # the floor when calibrated
    min_rows: int = MIN_DRIFT_ROWS  # per frame, and non-null values per feature
    # Thresholds from the reference's own time chunks (lakehouse/monitoring/drift_calibration.py); the
    # fixed thresholds above apply when it is off or the reference has fewer than 3 chunks of min_rows.
    calibrate: bool = True
    calibration_chunks: int = 10
    calibration_sigmas: float = 3.0
    # Calibrated only: a feature this many times beyond its threshold fails the check whatever its weight.
    severe_drift_ratio: float = 2.0

    def method(self, feature: str, kind: str) -> str:
        return self.methods.get(feature) or (self.categorical_method if kind == "categorical" else self.numeric_method)

    def threshold(self, feature: str, kind: str) -> float:
        if feature in self.thresholds:
            return float(self.thresholds[feature])
        return self.categorical_threshold if kind == "categorical" else self.numeric_threshold


@dataclass(frozen=True)
class Costs:
    """Business cost of each kind of error, in the domain's currency."""

    false_positive: float
    false_negative: float
    currency: str = "EUR"


@dataclass(frozen=True)
class RetrainPolicy:
    """When the retraining sensor asks for a new model, and the guardrails around it."""

    # New evidence: label events the last training set did not hold (new cases, new as-of times, changed
    # labels). Retraining fires on at least this many, and at least this share of that training set.
    min_new_labels: int = 100
    min_new_label_share: float = 0.1
    cooldown_seconds: float = 180.0  # after a retraining run is requested, wait this long before the next
    retrain_on_failed_checks: tuple[str, ...] = ("drift_check", "performance_check")
    # A triggered retraining searches briefly from the champion's hyperparameters (the first trial);
    # the full search (TrainingConfig.trials) is for runs started by hand.
    tuning_trials: int = 6

    def labels_needed(self, trained_rows: int) -> int:
        """New label events that make a retraining worth it, after a training set of trained_rows rows."""
        return max(self.min_new_labels, math.ceil(self.min_new_label_share * trained_rows))


@dataclass(frozen=True)
class Domain:
    """A prediction problem: its sources, entity, features, label and business context."""

    name: str
    prediction: str
    decision: str
    entity: str
    entity_key: str
    entity_description: str
    sources: tuple[Source, ...]
    spine_sources: tuple[str, ...]
    spine_sql: str  # returns (entity_key, day): one row per entity per day it is active
    feature_views: tuple[FeatureView, ...]
    label_sources: tuple[str, ...]
    label_sql: str  # returns (entity_key, event_timestamp, label) from spine and silver tables
    label_name: str
    costs: Costs
    risk_category: RiskCategory
    success_measure: str
    slices: tuple[str, ...] = ()
    feature_service_version: int = 1
    max_quarantine_rate: float = 0.05  # a batch with a larger share of bad rows is held back...
    min_held_rows: int = 5  # ...if it has at least this many (one bad row in a tiny file is not a broken feed)
    retraining: RetrainPolicy = RetrainPolicy()
    entity_dtype: Literal["int64", "string"] = "int64"  # the entity key's type (Feast join key)
    service: str = "bentos.dataset_service:DatasetService"  # the BentoML service
    service_args: Mapping[str, str] = field(default_factory=dict)  # its `bentoml serve/build --arg`s
    drift_window_days: int = 30  # the newest days of feature rows the drift check compares with the reference
    label_horizon: timedelta = timedelta(days=30)  # how long after its as-of time a label is final
    # How far before a prediction's day its label's as-of time may lie and still be its label: labels
    # that come every N days need N - 1 (0 demands an as-of time on the prediction's own day).
    label_lag: timedelta = timedelta(days=6)
    # "snapshot": one row per entity per active day, the active entities scored each day (the churn demo).
    # "event": each feature row is one case (a loan, an order), scored once when it lands and judged
    # against its own label, joined by (entity, event time).
    grain: Literal["snapshot", "event"] = "snapshot"
    drift: DriftConfig = DriftConfig()  # methods and thresholds of the drift check
    performance_margin: float = 0.05  # live ROC AUC may fall this far below the hold-out AUC
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def feature_service(self) -> str:
        return f"{self.name}_model_v{self.feature_service_version}"

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"domain {self.name!r} has no source {name!r}; known: {[s.name for s in self.sources]}")
