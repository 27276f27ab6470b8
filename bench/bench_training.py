"""The training step vs a bare `lightgbm.train` on the same matrix and parameters; tuning throughput.

    python bench/bench_training.py [--pairs 5]

Uses the demo's training set (run `make demo` first). Baseline: `lightgbm.train` with the same
parameters, early stopping and validation set, on a matrix built once outside the timing. Ours:
`lakehouse.ml.training.train_lightgbm` (builds its matrices, trains, serializes and hashes the model).
LightGBM runs with 1 thread in both (see LgbParams.num_threads).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import alternating_pairs  # noqa: E402

from lakehouse.demos.churn.domain import CHURN  # noqa: E402
from lakehouse.paths import LakePaths  # noqa: E402


def main() -> None:
    import lightgbm as lgb
    import polars as pl

    from lakehouse.ml import evaluation, training

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    path = LakePaths.from_env().training_set("churn")
    if not path.exists():
        sys.exit(f"no training set at {path}: run `make demo` first")
    split = training.time_split(pl.read_parquet(path))
    features, categorical, label = (
        training.feature_columns(CHURN),
        training.categorical_columns(CHURN),
        CHURN.label_name,
    )
    params = training.LgbParams()
    categories = {c: sorted(split.train[c].drop_nulls().unique().to_list()) for c in categorical}
    x_train, x_valid = (training.model_matrix(f, features, categories) for f in (split.train, split.valid))
    y_train, y_valid = split.train[label].to_numpy(), split.valid[label].to_numpy()

    def bare() -> None:
        train = lgb.Dataset(x_train, y_train, categorical_feature=categorical, free_raw_data=False)
        valid = lgb.Dataset(x_valid, y_valid, reference=train)
        lgb.train(
            params.lightgbm_params(),
            train,
            params.num_boost_round,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
        )

    def ours() -> None:
        training.train_lightgbm(split, features, categorical, label, params)

    ours(), bare()  # warm-up
    pairs = alternating_pairs(bare, ours, args.pairs)
    ratios = [b / a for a, b in pairs]

    started = time.perf_counter()
    best, trials = training.tune(split, features, categorical, label, params, trials=15, timeout_seconds=90)
    tune_seconds = time.perf_counter() - started
    model = training.train_lightgbm(split, features, categorical, label, best)
    baselines = training.train_baselines(split, features, categorical, label)
    y_test = split.test[label].to_numpy()
    auc = {
        name: evaluation.classification_metrics(y_test, fn(split.test), 0.5)["roc_auc"]
        for name, fn in {"tuned LightGBM": model.predict, **baselines}.items()
    }

    print(
        f"Training step on {split.train.height:,} train / {split.valid.height:,} valid rows, "
        f"{len(features)} features, {args.pairs} pairs after a warm-up.\n"
    )
    print("| benchmark | baseline | ours | ratio (median, min-max) | goal |")
    print("|---|---|---|---|---|")
    print(
        f"| training step | bare lightgbm.train {statistics.median(a for a, _ in pairs):.3f}s | "
        f"train_lightgbm {statistics.median(b for _, b in pairs):.3f}s | {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}) | <= 1.15x |"
    )
    print(
        f"| tuning, default budget (15 trials, 90 s) | - | {len(trials)} trials in {tune_seconds:.1f}s | "
        f"{60 * len(trials) / tune_seconds:.0f} trials/min | - |"
    )
    print(
        "| hold-out ROC AUC | "
        + ", ".join(f"{k} {v:.3f}" for k, v in auc.items() if k != "tuned LightGBM")
        + f" | tuned LightGBM {auc['tuned LightGBM']:.3f} | - | beat baselines |"
    )


if __name__ == "__main__":
    main()
