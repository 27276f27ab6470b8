"""The model lifecycle on the small materialized lake: candidate, gate decision, card, reproducibility, bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

from lakehouse.demos.churn.domain import CHURN
from lakehouse.ml import model_registry, training
from lakehouse.ml.candidates import (
    TrainingOptions,
    baseline_scores_file,
    gate_candidate,
    latest_candidate,
    model_card,
    train_candidate,
)
from lakehouse.ml.training import TrainingDataError
from lakehouse.paths import LakePaths

FAST = TrainingOptions(tune=False)


@pytest.fixture
def lake_copy(lake, tmp_path) -> LakePaths:
    copy = LakePaths(tmp_path / "data")
    shutil.copytree(lake.root, copy.root)
    return copy


def test_a_candidate_records_what_it_was_trained_on(lake_copy):
    record = train_candidate(lake_copy, CHURN, FAST)
    text, meta = model_registry.load_model_text(lake_copy, record["tag"])
    assert text.startswith("tree") and meta["model_sha256"] == record["model_sha256"]
    assert meta["feature_service"] == "churn_model_v1" and len(meta["features"]) == 21
    assert meta["data_versions"]["batches"] and len(meta["data_versions"]["training_set_sha256"]) == 64
    assert set(meta["baselines"]) == {"prior", "logistic"}
    assert {"roc_auc", "pr_auc", "log_loss", "brier", "precision", "recall", "f1"} <= set(meta["metrics"]["test"])
    assert latest_candidate(lake_copy, CHURN) == record["tag"]
    assert all(p.endswith(".png") for p in record["plots"].values())


def test_retraining_on_the_same_inputs_reproduces_the_same_model_file(lake_copy):
    pointer = lake_copy.models(CHURN.name) / "candidate.json"
    pointer.unlink(missing_ok=True)  # forget the last training run, so both runs below train
    first = train_candidate(lake_copy, CHURN, FAST)
    pointer.unlink()
    second = train_candidate(lake_copy, CHURN, FAST)
    assert not second.get("same_training_set")
    assert second["model_sha256"] == first["model_sha256"]
    assert second["tag"] == first["tag"] and second["reused_existing_version"]


def test_a_training_set_is_never_trained_on_twice(lake_copy):
    (lake_copy.models(CHURN.name) / "candidate.json").unlink(missing_ok=True)
    first = train_candidate(lake_copy, CHURN, FAST)
    pointer = (lake_copy.models(CHURN.name) / "candidate.json").read_text()
    again = train_candidate(lake_copy, CHURN, FAST)
    assert again["same_training_set"] and again["tag"] == first["tag"]
    assert again["metrics"]["test"] == first["metrics"]["test"] and again["plots"] == first["plots"]
    assert (lake_copy.models(CHURN.name) / "candidate.json").read_text() == pointer  # no new training run


def test_the_gate_decision_is_recorded_either_way_and_the_card_shows_it(lake_copy):
    record = train_candidate(lake_copy, CHURN, FAST)
    before = model_registry.champion(lake_copy, CHURN.name)  # None on a fresh lake; other tests may have promoted one
    decision = gate_candidate(lake_copy, CHURN, record["tag"])
    assert decision["reasons"]
    assert model_registry.champion(lake_copy, CHURN.name) == (record["tag"] if decision["promote"] else before)
    runs = model_registry.training_runs(lake_copy, CHURN.name)
    assert runs["decision"].to_list()[-1] == ("promoted" if decision["promote"] else "refused")
    files = model_card(lake_copy, CHURN, record["tag"])
    card = json.loads(files["json"].read_text())
    assert card["risk_category"] == "minimal" and card["promotion"]["reasons"] == decision["reasons"]
    markdown = files["markdown"].read_text()
    for section in (
        "## Intended use",
        "## Training data",
        "## Hold-out metrics",
        "## Slices",
        "## Promotion decision",
        "## Limitations",
    ):
        assert section in markdown


def test_the_gate_compares_with_the_baseline_scores_the_candidate_step_saved(lake_copy, monkeypatch):
    """Saved for the training set they came from, equal to a fresh fit's; the gate does not fit them again."""
    record = train_candidate(lake_copy, CHURN, FAST)
    saved = pl.read_parquet(
        baseline_scores_file(
            lake_copy, CHURN, record["tag"].split(":")[-1], record["data_versions"]["training_set_sha256"]
        )
    )
    split = training.time_split(pl.read_parquet(lake_copy.training_set(CHURN.name)))
    refit = training.train_baselines(split, record["features"], training.categorical_columns(CHURN), CHURN.label_name)
    assert saved.columns == ["prior", "logistic"] and saved.height == split.test.height
    for name, score in refit.items():
        assert np.array_equal(saved[name].to_numpy(), score(split.test))
    monkeypatch.setattr(training, "train_baselines", lambda *args: pytest.fail("the gate fitted the baselines again"))
    decision = gate_candidate(lake_copy, CHURN, record["tag"])
    assert decision["same_as_champion"] is False and decision["comparison"]


def test_without_saved_baseline_scores_the_gate_fits_the_baselines_itself(lake_copy, monkeypatch):
    """A candidate saved before these files existed (or a training set rebuilt since): the gate still compares."""
    record = train_candidate(lake_copy, CHURN, FAST)
    baseline_scores_file(
        lake_copy, CHURN, record["tag"].split(":")[-1], record["data_versions"]["training_set_sha256"]
    ).unlink()
    fits = []
    fit = training.train_baselines
    monkeypatch.setattr(training, "train_baselines", lambda *args: fits.append(1) or fit(*args))
    decision = gate_candidate(lake_copy, CHURN, record["tag"])
    assert fits == [1] and decision["same_as_champion"] is False and decision["comparison"]


def test_a_single_class_training_set_stops_with_a_clear_message_and_promotes_nothing(lake_copy):
    frame = pl.read_parquet(lake_copy.training_set("churn")).with_columns(
        pl.lit(0, dtype=pl.Int64).alias("churned_30d")
    )
    frame.write_parquet(lake_copy.training_set("churn"))
    before = model_registry.champion(lake_copy, CHURN.name)
    with pytest.raises(TrainingDataError, match="single class|one class|only"):
        train_candidate(lake_copy, CHURN, FAST)
    assert model_registry.champion(lake_copy, CHURN.name) == before
