"""Training: the time split, the data checks, reproducible LightGBM, tuning and baselines, on synthetic data."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from lakehouse.demos.churn.domain import CHURN
from lakehouse.ml.training import (
    LgbParams,
    Split,
    TrainingDataError,
    categorical_columns,
    check_training_data,
    feature_columns,
    feature_importance,
    load_trained_model,
    model_matrix,
    time_split,
    train_baselines,
    train_lightgbm,
    tune,
)

FEATURES = ["plan", "region", "usage", "tickets", "trend"]
CATEGORICAL = ["plan", "region"]
LABEL = "churned"
# Small and single-threaded so the suite stays fast on a busy machine.
FAST = LgbParams(num_threads=1, num_boost_round=200, early_stopping_rounds=20, min_data_in_leaf=20)


def synthetic(weeks: int = 6, per_week: int = 300, seed: int = 0) -> pl.DataFrame:
    """Weekly as-of rows whose label depends on usage, plan and tickets; some trends are null."""
    rng = np.random.default_rng(seed)
    n = weeks * per_week
    start = datetime(2025, 1, 1)
    plan = rng.choice(["basic", "standard", "premium"], n)
    usage = rng.normal(size=n)
    tickets = rng.poisson(1.0, n)
    logit = -1.5 - 1.5 * usage + 1.0 * (plan == "basic") + 0.5 * tickets
    trend = rng.normal(size=n)
    return pl.DataFrame(
        {
            "customer_id": np.arange(n),
            "event_timestamp": [start + timedelta(weeks=int(i // per_week)) for i in range(n)],
            LABEL: (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64),
            "plan": plan,
            "region": rng.choice(["north", "south", "east", "west"], n),
            "usage": usage,
            "tickets": tickets,
            "trend": np.where(rng.random(n) < 0.1, np.nan, trend),
        }
    ).with_columns(pl.col("trend").fill_nan(None))


@pytest.fixture(scope="module")
def data() -> pl.DataFrame:
    return synthetic()


@pytest.fixture(scope="module")
def split(data: pl.DataFrame) -> Split:
    return time_split(data)


@pytest.fixture(scope="module")
def model(split: Split):
    return train_lightgbm(split, FEATURES, CATEGORICAL, LABEL, FAST)


def test_domain_feature_lists() -> None:
    features = feature_columns(CHURN)
    assert len(features) == 21 and features[:3] == ["plan", "monthly_price", "region"]
    assert categorical_columns(CHURN) == ["plan", "region", "age_band", "channel"]


@pytest.mark.parametrize("weeks, sizes", [(10, (6, 2, 2)), (8, (4, 2, 2)), (5, (3, 1, 1)), (3, (1, 1, 1))])
def test_time_split_keeps_whole_dates_in_time_order(weeks: int, sizes: tuple[int, int, int]) -> None:
    df = synthetic(weeks=weeks, per_week=20).sample(fraction=1.0, shuffle=True, seed=1)
    s = time_split(df)
    times = {
        name: set(part["event_timestamp"].to_list())
        for name, part in [("train", s.train), ("valid", s.valid), ("test", s.test)]
    }
    assert (len(times["train"]), len(times["valid"]), len(times["test"])) == sizes
    assert max(times["train"]) < min(times["valid"]) and max(times["valid"]) < min(times["test"])
    assert s.train.height + s.valid.height + s.test.height == df.height
    first = datetime(2025, 1, 1)
    assert s.boundaries["train"] == f"{first.date()}..{(first + timedelta(weeks=sizes[0] - 1)).date()}"
    assert s.boundaries["test"].endswith(str((first + timedelta(weeks=weeks - 1)).date()))


def test_time_split_needs_three_dates() -> None:
    with pytest.raises(TrainingDataError, match="at least 3"):
        time_split(synthetic(weeks=2, per_week=50))


def test_good_data_passes_checks(split: Split) -> None:
    check_training_data(split, FEATURES, LABEL)


def _with(split: Split, **parts: pl.DataFrame) -> Split:
    return replace(split, **parts)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda s: _with(s, train=s.train.with_columns(pl.lit(0).alias(LABEL))), "train has a single class"),
        (lambda s: _with(s, valid=s.valid.with_columns(pl.lit(1).alias(LABEL))), "valid has a single class"),
        (lambda s: _with(s, train=s.train.head(50)), "too few rows: train has 50"),
        (lambda s: _with(s, test=s.test.clear()), "too few rows: test is empty"),
        (
            lambda s: _with(s, train=s.train.with_columns(pl.lit(None, pl.Float64).alias("trend"))),
            "'trend' is all-null",
        ),
        (
            lambda s: _with(s, train=s.train.with_columns(pl.col(LABEL).cast(pl.Float64).alias("usage"))),
            "label leak: feature 'usage'",
        ),
        (
            lambda s: _with(s, train=s.train.with_columns((3 - 2 * pl.col(LABEL)).alias("tickets"))),
            "label leak: feature 'tickets'",
        ),
        (
            lambda s: _with(
                s,
                train=s.train.with_columns(
                    pl.when(pl.col(LABEL) == 1).then(pl.lit("gold")).otherwise(pl.lit("tin")).alias("plan")
                ),
            ),
            "label leak: feature 'plan'",
        ),
        (lambda s: _with(s, valid=s.valid.drop("region")), r"valid is missing columns \['region'\]"),
    ],
)
def test_bad_training_data_is_refused_with_the_reason(split: Split, break_it, message: str) -> None:
    with pytest.raises(TrainingDataError, match=message):
        check_training_data(break_it(split), FEATURES, LABEL)


def test_model_beats_the_prior_on_the_hold_out(split: Split, model) -> None:
    baselines = train_baselines(split, FEATURES, CATEGORICAL, LABEL)
    y = split.test[LABEL].to_numpy()
    scores = model.predict(split.test)
    assert scores.shape == (split.test.height,) and ((scores > 0) & (scores < 1)).all()
    prior = baselines["prior"](split.test)
    assert np.all(prior == split.train[LABEL].mean())
    assert roc_auc_score(y, scores) > roc_auc_score(y, prior) + 0.2
    assert roc_auc_score(y, baselines["logistic"](split.test)) > 0.7
    assert 0.7 < model.valid_auc <= 1 and 1 <= model.best_iteration <= FAST.num_boost_round


def test_retraining_gives_byte_identical_model_text(split: Split, model) -> None:
    again = train_lightgbm(split, FEATURES, CATEGORICAL, LABEL, FAST)
    assert again.model_text == model.model_text and again.sha256 == model.sha256
    assert model.model_text.startswith("tree") and model.categories["plan"] == ["basic", "premium", "standard"]


def test_default_threads_are_deterministic_too(split: Split) -> None:
    params = LgbParams(num_boost_round=40, early_stopping_rounds=10)
    first, second = (train_lightgbm(split, FEATURES, CATEGORICAL, LABEL, params) for _ in range(2))
    assert first.sha256 == second.sha256


def test_loaded_model_predicts_identically(split: Split, model) -> None:
    loaded = load_trained_model(model.model_text, model.features, model.categories, model.params)
    assert loaded.best_iteration == model.best_iteration and loaded.sha256 == model.sha256
    assert np.array_equal(loaded.predict(split.test), model.predict(split.test))
    assert LgbParams(**loaded.params) == FAST


def test_predict_handles_unseen_categories_and_nulls(model) -> None:
    rows = pl.DataFrame(
        {
            "plan": ["platinum", None, "basic"],
            "region": ["mars", "north", None],
            "usage": [0.0, None, 1.0],
            "tickets": [None, 1, 2],
            "trend": [None, None, 0.5],
        }
    )
    scores = model.predict(rows)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()
    # An unseen category is treated exactly like a missing one.
    unseen, missing = rows.head(1), rows.head(1).with_columns(pl.lit(None, pl.String).alias("plan"))
    assert model.predict(unseen)[0] == model.predict(missing)[0]


def test_model_matrix_codes_do_not_depend_on_the_frame() -> None:
    categories = {"plan": ["basic", "premium", "standard"]}
    a = model_matrix(pl.DataFrame({"plan": ["standard", "basic"], "n": [1, None]}), ["plan", "n"], categories)
    b = model_matrix(pl.DataFrame({"plan": ["standard"], "n": [2]}), ["plan", "n"], categories)
    assert a["plan"].cat.codes.tolist() == [2, 0] and b["plan"].cat.codes.tolist() == [2]
    assert a["n"].dtype == np.float64 and np.isnan(a["n"][1])


def test_feature_importance_is_sorted_gain(model) -> None:
    importance = feature_importance(model)
    assert set(importance) == set(FEATURES)
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
    assert next(iter(importance)) == "usage"  # the strongest signal in the synthetic data


def test_tune_records_every_trial_and_is_reproducible(split: Split) -> None:
    messages: list[str] = []
    best, records = tune(
        split, FEATURES, CATEGORICAL, LABEL, base=FAST, trials=4, timeout_seconds=600, progress=messages.append
    )
    assert [r["number"] for r in records] == [0, 1, 2, 3] and len(messages) == 4
    assert set(records[0]) == {"number", "params", "valid_auc", "best_iteration", "seconds"}
    winner = max(records, key=lambda r: r["valid_auc"])
    assert LgbParams(**winner["params"]) == best and best.num_threads == FAST.num_threads
    again, _ = tune(split, FEATURES, CATEGORICAL, LABEL, base=FAST, trials=4, timeout_seconds=600)
    assert again == best


def test_tune_tries_the_given_hyperparameters_first_clipped_into_the_search_space(split: Split) -> None:
    champion = {
        "num_leaves": 3,
        "learning_rate": 0.1,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.7,
        "lambda_l2": 2.0,
        "num_boost_round": 8,
    }
    _, records = tune(split, FEATURES, CATEGORICAL, LABEL, base=FAST, trials=2, timeout_seconds=600, first=champion)
    tried = records[0]["params"]
    assert tried["num_leaves"] == 7  # 3 is below the searched range's low end
    assert {k: tried[k] for k in ("learning_rate", "min_data_in_leaf", "feature_fraction", "lambda_l2")} == {
        "learning_rate": 0.1,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.7,
        "lambda_l2": 2.0,
    }
    assert tried["num_boost_round"] == FAST.num_boost_round  # only the searched fields come from `first`
    assert records[1]["params"] != tried  # then TPE samples
