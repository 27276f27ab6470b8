"""Every generated path, derived from one data root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DATA_ROOT_ENV = "LAKEHOUSE_DATA_ROOT"
REPO_ROOT = Path(__file__).resolve().parent.parent
FEATURE_REPO = REPO_ROOT / "feature_repo"


def data_root() -> Path:
    """The data root: $LAKEHOUSE_DATA_ROOT, or data/ in the repository."""
    return Path(os.environ.get(DATA_ROOT_ENV) or REPO_ROOT / "data").resolve()


@dataclass(frozen=True)
class LakePaths:
    """The layout of everything generated under one data root."""

    root: Path

    @classmethod
    def from_env(cls) -> LakePaths:
        return cls(data_root())

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    def landing_folder(self, folder: str) -> Path:
        """Where producers drop one source's (or one dataset's) files."""
        return self.landing / folder

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    def bronze(self, source: str) -> Path:
        return self.lake / "bronze" / source

    @property
    def manifest(self) -> Path:
        """One JSON record per ingested batch."""
        return self.lake / "bronze" / "_manifest"

    @property
    def rejected(self) -> Path:
        """One JSON record per landing file that could not become a batch."""
        return self.lake / "bronze" / "_rejected"

    def validated(self, source: str) -> Path:
        return self.lake / "validated" / source

    def validation_reports(self, source: str) -> Path:
        return self.lake / "validated" / "_reports" / source

    def quarantine(self, source: str) -> Path:
        return self.lake / "quarantine" / source

    def silver(self, source: str) -> Path:
        return self.lake / "silver" / f"{source}.parquet"

    def features(self, view: str) -> Path:
        return self.lake / "features" / f"{view}.parquet"

    def latest(self, name: str) -> Path:
        """A view's newest row per active entity, or a domain's entities of the newest day ("_<domain>_active").

        Arrow IPC files in the order of the active entities, for batch scoring.
        """
        return self.lake / "features" / "_latest" / f"{name}.arrow"

    def spine(self, domain: str) -> Path:
        """One row per entity per active day: what every feature view of the domain is computed on."""
        return self.lake / "features" / f"_{domain}_spine.parquet"

    def labels(self, domain: str) -> Path:
        return self.lake / "training" / domain / "label_events.parquet"

    def training_set(self, domain: str) -> Path:
        return self.lake / "training" / domain / "training_set.parquet"

    def batch_scores(self, domain: str) -> Path:
        """The champion's score of every active entity (the precompute serving pattern)."""
        return self.lake / "serving" / domain / "batch_scores.parquet"

    def score_history(self, domain: str) -> Path:
        """One Parquet file of batch scores per feature day: the predictions live performance is measured on."""
        return self.lake / "serving" / domain / "score_history"

    @property
    def duckdb_file(self) -> Path:
        """A DuckDB catalog of views over the lake's Parquet files, for ad-hoc queries."""
        return self.root / "lakehouse.duckdb"

    @property
    def feast(self) -> Path:
        return self.root / "feast"

    @property
    def feature_store_yaml(self) -> Path:
        """Feast's configuration for this data root (`feast -c` reads it through feature_repo/)."""
        return self.feast / "feature_store.yaml"

    @property
    def feast_registry_db(self) -> Path:
        return self.feast / "registry.db"

    @property
    def online_store_db(self) -> Path:
        """The sqlite online store (the default profile)."""
        return self.feast / "online_store.db"

    @property
    def materialized_windows(self) -> Path:
        """The end of each feature view's last online materialization window, per online store."""
        return self.feast / "materialized_windows.json"

    def served_predictions(self, domain: str) -> Path:
        """The domain's prediction log files gathered into one deduplicated lake table."""
        return self.lake / "serving" / domain / "prediction_log.parquet"

    @property
    def experiments(self) -> Path:
        """One Parquet row per training run."""
        return self.lake / "experiments"

    def models(self, domain: str) -> Path:
        """Candidate records, model cards and plots per model version."""
        return self.root / "models" / domain

    @property
    def registry(self) -> Path:
        """Champion pointers with their history, one JSON file per domain."""
        return self.root / "registry"

    def champion_pointer(self, domain: str) -> Path:
        return self.registry / f"{domain}.json"

    @property
    def bentoml_home(self) -> Path:
        """BentoML's home: the model store (models/) and built bentos (bentos/)."""
        return self.root / "bentoml"

    def monitoring(self, domain: str) -> Path:
        """Drift reports, latest monitoring results and retraining decisions."""
        return self.root / "monitoring" / domain

    def prediction_log(self, domain: str) -> Path:
        """Small Parquet files of served predictions, written by the domain's BentoML service."""
        return self.root / "prediction_log" / domain

    @property
    def dagster_home(self) -> Path:
        return Path(os.environ.get("DAGSTER_HOME") or self.root / "dagster")
