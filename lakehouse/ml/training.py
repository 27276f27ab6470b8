"""Model training: a time-ordered split, data checks, LightGBM with early stopping, tuning and baselines.

Plain functions over polars frames; LightGBM, optuna and scikit-learn are imported where they are used
so that importing this module (for example from the Dagster definitions) stays cheap.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import polars as pl

from lakehouse.declarations.domain import Domain

if TYPE_CHECKING:
    import pandas as pd

# A feature whose correlation with the label is at least this is the label in disguise.
LEAK_CORRELATION = 0.999
# Below this many non-null values a perfect correlation is as likely chance as a leak.
LEAK_MIN_VALUES = 30


class TrainingDataError(ValueError):
    """The training set cannot give a trustworthy model; the message says why."""


def feature_columns(domain: Domain) -> list[str]:
    """Every feature of every view, in declaration order."""
    return [f.name for view in domain.feature_views for f in view.features]


def categorical_columns(domain: Domain) -> list[str]:
    """The features with dtype "string"."""
    return [f.name for view in domain.feature_views for f in view.features if f.dtype == "string"]


@dataclass(frozen=True)
class Split:
    """Train, validation and hold-out test rows, each a contiguous window of as-of times."""

    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    boundaries: dict[str, str]  # part -> "first..last" as-of time, ISO


def _iso(value: Any) -> str:
    """An as-of time as an ISO date, or as a full timestamp when it is not midnight."""
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    return value.isoformat() if isinstance(value, (date, datetime)) else str(value)


def from_iso(value: str) -> datetime:
    """A split boundary back as a time: an ISO date (midnight) or timestamp, as _iso wrote it."""
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    except ValueError:
        return datetime.fromisoformat(value)


def time_split(
    df: pl.DataFrame, timestamp: str = "event_timestamp", valid_fraction: float = 0.2, test_fraction: float = 0.2
) -> Split:
    """Split by whole as-of times: the oldest to train, then valid, the newest to test."""
    if timestamp not in df.columns:
        raise TrainingDataError(f"no timestamp column {timestamp!r} to split on")
    if df[timestamp].null_count():
        raise TrainingDataError(f"{df[timestamp].null_count()} rows have no {timestamp}")
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(f"fractions must be in (0, 1) and sum below 1: {valid_fraction=}, {test_fraction=}")
    times = df[timestamp].unique().sort().to_list()
    n = len(times)
    if n < 3:
        raise TrainingDataError(f"{n} distinct {timestamp} values; a time split needs at least 3")
    # Whole as-of dates per part, at least one each, and train keeps at least one.
    n_test = max(1, int(n * test_fraction + 0.5))
    n_valid = max(1, int(n * valid_fraction + 0.5))
    while n - n_test - n_valid < 1:
        if n_test >= n_valid:
            n_test -= 1
        else:
            n_valid -= 1
    parts = {
        "train": times[: n - n_valid - n_test],
        "valid": times[n - n_valid - n_test : n - n_test],
        "test": times[n - n_test :],
    }
    frames = {name: df.filter(pl.col(timestamp).is_between(ts[0], ts[-1])) for name, ts in parts.items()}
    boundaries = {name: f"{_iso(ts[0])}..{_iso(ts[-1])}" for name, ts in parts.items()}
    return Split(train=frames["train"], valid=frames["valid"], test=frames["test"], boundaries=boundaries)


def check_training_data(split: Split, features: list[str], label: str, min_rows: int = 200) -> None:
    """Raise TrainingDataError if the split cannot give a trustworthy model."""
    parts = {"train": split.train, "valid": split.valid, "test": split.test}
    for name, part in parts.items():
        missing = [c for c in [*features, label] if c not in part.columns]
        if missing:
            raise TrainingDataError(f"{name} is missing columns {missing}")
    if split.train.height < min_rows:
        raise TrainingDataError(f"too few rows: train has {split.train.height}, at least {min_rows} are needed")
    for name in ("valid", "test"):
        if parts[name].height == 0:
            raise TrainingDataError(f"too few rows: {name} is empty")
    for name, part in parts.items():
        y = part[label]
        if y.null_count():
            raise TrainingDataError(f"{name} has {y.null_count()} rows without a label {label!r}")
        classes = sorted(y.cast(pl.Int64).unique().to_list())
        if not set(classes) <= {0, 1}:
            raise TrainingDataError(f"label {label!r} must be 0/1; {name} has values {classes[:10]}")
        # AUC and early stopping are undefined with one class, in any part.
        if len(classes) < 2:
            raise TrainingDataError(f"{name} has a single class: every {label!r} is {classes[0]}")
    train = split.train
    for f in features:
        col = train[f]
        nulls = col.null_count() + (col.is_nan().sum() if col.dtype.is_float() else 0)
        if nulls == train.height:
            raise TrainingDataError(f"feature {f!r} is all-null in train")
    y = train[label].cast(pl.Float64)
    for f in features:
        if _leaks(train[f], y):
            raise TrainingDataError(f"label leak: feature {f!r} is (almost) identical to the label {label!r} in train")


def _leaks(feature: pl.Series, y: pl.Series) -> bool:
    """Whether a feature restates the label: |correlation| ~1, or a two-valued category matching it 1:1."""
    frame = pl.DataFrame({"x": feature, "y": y}).drop_nulls()
    if frame.height < LEAK_MIN_VALUES:
        return False
    if feature.dtype.is_numeric() or feature.dtype == pl.Boolean:
        frame = frame.with_columns(pl.col("x").cast(pl.Float64)).filter(pl.col("x").is_finite())
        if frame["x"].n_unique() < 2:
            return False
        corr = frame.select(pl.corr("x", "y")).item()
        return corr is not None and abs(corr) >= LEAK_CORRELATION
    # A category leaks when it has exactly two values and each value has a single class.
    if frame["x"].n_unique() != 2:
        return False
    return frame.group_by("x").agg(pl.col("y").n_unique())["y"].max() == 1


@dataclass(frozen=True)
class LgbParams:
    """LightGBM hyperparameters and the boosting budget."""

    num_leaves: int = 31
    learning_rate: float = 0.05
    min_data_in_leaf: int = 50
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    num_boost_round: int = 1000
    early_stopping_rounds: int = 50
    seed: int = 42
    num_threads: int = 1  # 2 OpenMP threads on 2 shared cores measured 40x slower under load, never faster here

    def lightgbm_params(self) -> dict:
        """The parameter dict for lightgbm.train: deterministic, quiet, seeded."""
        return {
            "objective": "binary",
            "metric": "auc",
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "num_threads": self.num_threads,
            # Same inputs, same threads -> the same bytes of model text.
            "deterministic": True,
            "force_row_wise": True,
            "seed": self.seed,
            "bagging_seed": self.seed,
            "feature_fraction_seed": self.seed,
            "data_random_seed": self.seed,
            "verbosity": -1,
        }


@dataclass
class TrainedModel:
    """A LightGBM booster with everything needed to score a frame and to reproduce or verify it."""

    booster: Any
    model_text: str
    sha256: str
    best_iteration: int
    params: dict
    features: list[str]
    categories: dict[str, list[str]]
    valid_auc: float = float("nan")  # AUC on the validation window at best_iteration (nan when loaded)

    @property
    def num_threads(self) -> int:
        """The model's own num_threads, for every predict: LightGBM ignores the trained params there (0 = all cores)."""
        return int(self.booster.params.get("num_threads", 0))

    def predict(self, df: pl.DataFrame) -> np.ndarray:
        """Positive-class probabilities for a frame with the feature columns; unseen categories count as missing."""
        matrix = model_matrix(df, self.features, self.categories)
        return self.booster.predict(matrix, num_iteration=self.best_iteration, num_threads=self.num_threads)


def model_matrix(df: pl.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """A pandas frame for LightGBM: categoricals over fixed category lists, numerics float64 with NaN."""
    import pandas as pd

    missing = [f for f in features if f not in df.columns]
    if missing:
        raise ValueError(f"frame is missing feature columns {missing}")
    columns = {}
    for f in features:
        if f in categories:
            # Fixed categories keep codes stable across frames; unseen values and nulls become NaN.
            columns[f] = pd.Categorical(df[f].cast(pl.String).to_numpy(), categories=categories[f])
        else:
            columns[f] = df[f].cast(pl.Float64).to_numpy()
    return pd.DataFrame(columns)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def train_lightgbm(
    split: Split, features: list[str], categorical: list[str], label: str, params: LgbParams = LgbParams()
) -> TrainedModel:
    """Train LightGBM on train with native categoricals, stopping early on validation AUC."""
    import lightgbm as lgb

    categories = {c: sorted(split.train[c].drop_nulls().cast(pl.String).unique().to_list()) for c in categorical}
    lgb_params = params.lightgbm_params()
    train_set = lgb.Dataset(
        model_matrix(split.train, features, categories),
        label=split.train[label].cast(pl.Float64).to_numpy(),
        categorical_feature=categorical,
        params=lgb_params,
    )
    valid_set = lgb.Dataset(
        model_matrix(split.valid, features, categories),
        label=split.valid[label].cast(pl.Float64).to_numpy(),
        reference=train_set,
    )
    booster = lgb.train(
        lgb_params,
        train_set,
        num_boost_round=params.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    best_iteration = booster.best_iteration or booster.current_iteration()
    model_text = booster.model_to_string(num_iteration=best_iteration)
    return TrainedModel(
        booster=booster,
        model_text=model_text,
        sha256=_sha256(model_text),
        best_iteration=best_iteration,
        params=asdict(params),
        features=list(features),
        categories=categories,
        valid_auc=float(booster.best_score["valid"]["auc"]),
    )


def load_trained_model(
    model_text: str,
    features: list[str],
    categories: dict[str, list[str]],
    params: dict | None = None,
    sha256: str | None = None,
) -> TrainedModel:
    """A TrainedModel from LightGBM model text (never a pickle); sha256: the digest the registry already checked."""
    import lightgbm as lgb

    booster = lgb.Booster(model_str=model_text)
    return TrainedModel(
        booster=booster,
        model_text=model_text,
        sha256=sha256 or _sha256(model_text),
        best_iteration=booster.current_iteration(),  # the text holds only the trees up to the best one
        params=dict(params or {}),
        features=list(features),
        categories={k: list(v) for k, v in categories.items()},
    )


def feature_importance(model: TrainedModel) -> dict[str, float]:
    """Total split gain per feature, largest first."""
    gains = model.booster.feature_importance(importance_type="gain", iteration=model.best_iteration)
    return dict(sorted(zip(model.features, map(float, gains)), key=lambda kv: -kv[1]))


# The tuned hyperparameters: (type, low, high, log scale).
SEARCH_SPACE: dict[str, tuple[type, float, float, bool]] = {
    "num_leaves": (int, 7, 127, True),
    "learning_rate": (float, 0.01, 0.2, True),
    "min_data_in_leaf": (int, 10, 400, True),
    "feature_fraction": (float, 0.5, 1.0, False),
    "lambda_l2": (float, 1e-3, 30.0, True),
}


def tune(
    split: Split,
    features: list[str],
    categorical: list[str],
    label: str,
    base: LgbParams = LgbParams(),
    trials: int = 20,
    timeout_seconds: float = 60.0,
    progress: Callable[[str], None] | None = None,
    first: dict[str, Any] | None = None,
) -> tuple[LgbParams, list[dict]]:
    """Search LightGBM hyperparameters with seeded TPE for the best validation AUC; never looks at test.

    `first` (e.g. the champion's params) is tried before TPE samples: a short search then starts from
    what already works instead of from random points.
    """
    import optuna

    records: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        params = replace(
            base,
            **{
                name: (trial.suggest_int if kind is int else trial.suggest_float)(name, low, high, log=log)
                for name, (kind, low, high, log) in SEARCH_SPACE.items()
            },
        )
        started = time.perf_counter()
        model = train_lightgbm(split, features, categorical, label, params)
        record = {
            "number": trial.number,
            "params": asdict(params),
            "valid_auc": model.valid_auc,
            "best_iteration": model.best_iteration,
            "seconds": round(time.perf_counter() - started, 3),
        }
        records.append(record)
        if progress:
            best = max(r["valid_auc"] for r in records)
            progress(
                f"trial {trial.number + 1}/{trials}: valid AUC {model.valid_auc:.4f} (best {best:.4f}), "
                f"{model.best_iteration} rounds, {record['seconds']:.1f}s"
            )
        return model.valid_auc

    # Optuna logs every trial at INFO; keep the caller's output clean and restore the level after.
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=base.seed))
        if first:
            # Clipped into the search space: out-of-range fixed values make Optuna warn on every trial.
            study.enqueue_trial(
                {
                    name: min(max(kind(first[name]), low), high)
                    for name, (kind, low, high, _) in SEARCH_SPACE.items()
                    if name in first
                }
            )
        study.optimize(objective, n_trials=trials, timeout=timeout_seconds)
    finally:
        optuna.logging.set_verbosity(verbosity)
    if not records:
        return base, records
    return replace(base, **study.best_trial.params), records


def train_baselines(
    split: Split, features: list[str], categorical: list[str], label: str
) -> dict[str, Callable[[pl.DataFrame], np.ndarray]]:
    """Score functions of the models LightGBM must beat: the train positive rate and a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f for f in features if f not in categorical]

    def frame(df: pl.DataFrame) -> pd.DataFrame:
        # Nulls in a categorical become their own category; numerics keep NaN for the imputer.
        return df.select(
            *[pl.col(c).cast(pl.String).fill_null("(missing)") for c in categorical],
            *[pl.col(c).cast(pl.Float64) for c in numeric],
        ).to_pandas()

    prior = float(split.train[label].cast(pl.Float64).mean())
    logistic = make_pipeline(
        ColumnTransformer(
            [
                ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
                ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ]
        ),
        LogisticRegression(max_iter=5000, random_state=0),
    )
    logistic.fit(frame(split.train), split.train[label].cast(pl.Int64).to_numpy())
    return {
        "prior": lambda df: np.full(df.height, prior),
        "logistic": lambda df: logistic.predict_proba(frame(df))[:, 1],
    }
