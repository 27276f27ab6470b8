"""The point-in-time training set: Feast's historical join of the feature service onto label events."""

from __future__ import annotations

from typing import Any

import polars as pl

from lakehouse.declarations.domain import Domain
from lakehouse.feature_store.feast_objects import historical_features
from lakehouse.io import write_parquet_atomic
from lakehouse.lake.feature_tables import current_label_events
from lakehouse.paths import LakePaths


class TrainingSetError(RuntimeError):
    """The training set would not be one row per label event."""


def build_training_set(store: Any, domain: Domain, paths: LakePaths) -> dict[str, Any]:
    """Join every label event with the features known at its time; write and describe the result."""
    labels = pl.read_parquet(paths.labels(domain.name))
    entity_df = labels.to_pandas()
    entity_df["event_timestamp"] = entity_df["event_timestamp"].dt.tz_localize("UTC")
    joined = pl.from_pandas(historical_features(store, domain, entity_df))
    joined = joined.with_columns(pl.col("event_timestamp").dt.replace_time_zone(None)).sort(
        "event_timestamp", domain.entity_key
    )
    if joined.height != labels.height:
        raise TrainingSetError(f"{labels.height} label events in, {joined.height} training rows out")
    write_parquet_atomic(joined, paths.training_set(domain.name))
    features = [f.name for v in domain.feature_views for f in v.features]
    nulls = {f: joined[f].null_count() for f in features}
    return {
        "rows": joined.height,
        "label_rows": labels.height,
        "positives": int(joined[domain.label_name].sum()),
        "features": len(features),
        "null_counts": nulls,
        "first_as_of": str(joined["event_timestamp"].min()),
        "last_as_of": str(joined["event_timestamp"].max()),
    }


def new_label_events(paths: LakePaths, domain: Domain) -> int:
    """Label events the training set does not hold yet: new cases, new as-of times, or a changed label.

    What a retraining could learn from. Rows the training set already holds give the same training set,
    so the same model: counting them would retrain on nothing new (and without end).
    """
    key, label = domain.entity_key, domain.label_name
    if not paths.spine(domain.name).exists():
        return 0  # no features published yet: nothing can be trained on

    def normalized(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            pl.col(key),
            pl.col("event_timestamp").cast(pl.Datetime("us")),
            pl.col(label).cast(pl.Float64),
        ).filter(pl.col(label).is_not_null())

    now = normalized(current_label_events(paths, domain))
    if not paths.training_set(domain.name).exists():
        return now.height
    trained = normalized(pl.read_parquet(paths.training_set(domain.name), columns=[key, "event_timestamp", label]))
    return now.join(trained, on=[key, "event_timestamp", label], how="anti", nulls_equal=True).height


def compare_with_labels(paths: LakePaths, domain: Domain) -> dict[str, int]:
    """Label events missing from the training set, and training rows that match no label event."""
    keys = [domain.entity_key, "event_timestamp"]
    labels = pl.read_parquet(paths.labels(domain.name), columns=keys)
    training = pl.read_parquet(paths.training_set(domain.name), columns=keys)
    return {
        "label_rows": labels.height,
        "training_rows": training.height,
        "missing": labels.join(training, on=keys, how="anti").height,
        "extra": training.join(labels, on=keys, how="anti").height,
    }
