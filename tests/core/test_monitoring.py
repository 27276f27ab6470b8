"""Monitoring: Evidently drift weighted by importance, live performance on matured labels, serving skew."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from lakehouse.declarations.domain import DriftConfig
from lakehouse.monitoring import drift, performance, skew
from lakehouse.monitoring.drift import drift_report
from lakehouse.monitoring.served import served_features

FEATURES = [
    "plan",
    "region",
    "monthly_price",
    "tenure_days",
    "sessions_7d",
    "minutes_7d",
    "open_tickets",
    "usage_trend",
]
CATEGORICAL = ["plan", "region"]
# Gain shares like a churn model's: one feature carries most of the signal.
IMPORTANCE = {
    "minutes_7d": 600.0,
    "tenure_days": 120.0,
    "monthly_price": 80.0,
    "plan": 60.0,
    "sessions_7d": 50.0,
    "region": 40.0,
    "open_tickets": 30.0,
    "usage_trend": 20.0,
}
ROWS = 50_000

# The demo's label shape: weekly as-of dates, a 30-day outcome.
CHURN_LABELS_JOIN = {"entity_key": "customer_id", "label": "churned_30d", "max_label_lag": timedelta(days=6)}
CHURN_LABELS = {**CHURN_LABELS_JOIN, "horizon": timedelta(days=30)}


def customers(n: int, seed: int, minutes_shift: float = 0.0, sessions_shift: float = 0.0) -> pl.DataFrame:
    """Churn-like features; shifts are in units of the feature's standard deviation."""
    rng = np.random.default_rng(seed)
    minutes = rng.gamma(2.0, 60.0, n)
    sessions = rng.poisson(6, n).astype(float)
    minutes_std, sessions_std = (minutes.std(), sessions.std()) if n > 1 else (0.0, 0.0)
    return pl.DataFrame(
        {
            "plan": rng.choice(["basic", "standard", "premium"], n, p=[0.5, 0.35, 0.15]),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "monthly_price": rng.choice([9.99, 14.99, 24.99], n) + rng.normal(0, 0.5, n),
            "tenure_days": rng.integers(0, 1500, n),
            "sessions_7d": (sessions + sessions_shift * sessions_std).round().astype(np.int64),
            "minutes_7d": minutes + minutes_shift * minutes_std,
            "open_tickets": rng.poisson(0.3, n),
            "usage_trend": pl.Series(np.where(rng.random(n) < 0.05, np.nan, rng.normal(1.0, 0.2, n))).fill_nan(None),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pl.DataFrame:
    return customers(ROWS, seed=1)


def test_sampling_noise_between_two_samples_of_one_distribution_passes(reference, tmp_path):
    result = drift_report(reference, customers(ROWS, seed=2), FEATURES, CATEGORICAL, IMPORTANCE, report_dir=tmp_path)
    assert result.status == "passed" and result.passed is True
    assert result.drifted == [] and result.weighted_drifted_share == 0.0
    assert set(result.features) == set(FEATURES) and result.skipped == {}
    # Noise is far below the thresholds, not just under them.
    assert max(f["score"] for f in result.features.values()) < 0.03
    assert result.rows == {"reference": ROWS, "current": ROWS}
    html = (tmp_path / "drift_report.html").read_text()
    assert result.report_path == str(tmp_path / "drift_report.html") and "minutes_7d" in html


def test_a_large_shift_in_the_most_important_feature_fails_though_most_features_are_stable(reference):
    result = drift_report(reference, customers(ROWS, seed=3, minutes_shift=0.5), FEATURES, CATEGORICAL, IMPORTANCE)
    assert result.drifted == ["minutes_7d"]
    assert result.drifted_share == pytest.approx(1 / len(FEATURES))  # the plain share alone would pass
    assert result.weighted_drifted_share == pytest.approx(0.6)
    assert result.status == "failed" and result.passed is False
    minutes = result.features["minutes_7d"]
    assert minutes["method"] == "wasserstein" and minutes["score"] > 0.4 and minutes["weight"] == pytest.approx(0.6)


def test_the_same_shift_in_an_unimportant_feature_is_reported_but_passes(reference):
    result = drift_report(reference, customers(ROWS, seed=4, sessions_shift=0.5), FEATURES, CATEGORICAL, IMPORTANCE)
    assert result.drifted == ["sessions_7d"] and result.features["sessions_7d"]["drifted"]
    assert result.weighted_drifted_share == pytest.approx(0.05)
    assert result.passed is True


def test_a_categorical_shift_is_measured_with_jensen_shannon_and_methods_are_configurable(reference):
    current = customers(ROWS, seed=5).with_columns(
        plan=pl.when(pl.int_range(pl.len()) % 2 == 0).then(pl.lit("premium")).otherwise(pl.col("plan"))
    )
    config = DriftConfig(
        methods={"monthly_price": "psi"}, thresholds={"tenure_days": 0.5}, max_weighted_drift_share=0.05
    )
    result = drift_report(reference, current, FEATURES, CATEGORICAL, IMPORTANCE, config=config)
    plan = result.features["plan"]
    assert plan["kind"] == "categorical" and plan["method"] == "jensenshannon" and plan["drifted"]
    assert result.features["monthly_price"]["method"] == "psi"
    assert result.features["tenure_days"]["threshold"] == 0.5
    assert result.weighted_drifted_share == pytest.approx(0.06) and result.passed is False


def test_without_importance_every_feature_weighs_the_same(reference):
    current = customers(ROWS, seed=6, minutes_shift=0.5)
    result = drift_report(reference, current, FEATURES, CATEGORICAL, importance=None)
    assert result.weighted_drifted_share == pytest.approx(result.drifted_share) == pytest.approx(1 / 8)
    assert result.passed is True


@pytest.mark.parametrize("current_rows", [0, 1])
def test_an_empty_or_single_row_current_frame_is_skipped_not_a_crash(reference, current_rows, tmp_path):
    result = drift_report(
        reference, customers(current_rows, seed=7), FEATURES, CATEGORICAL, IMPORTANCE, report_dir=tmp_path
    )
    assert result.status == "skipped" and result.passed is None
    assert f"current has {current_rows} rows" in result.reason
    assert result.report_path is None and result.rows["current"] == current_rows


def test_an_empty_reference_is_skipped():
    result = drift_report(customers(0, seed=8), customers(2000, seed=9), FEATURES, CATEGORICAL)
    assert result.passed is None and "reference has 0 rows" in result.reason


def test_unmeasurable_columns_are_skipped_with_a_reason_and_the_rest_is_measured(tmp_path):
    n = 3000
    reference = customers(n, seed=10).with_columns(flag=pl.lit(1), broken=pl.lit(None, dtype=pl.Float64))
    current = (
        customers(n, seed=11)
        .with_columns(
            flag=pl.lit(1),
            broken=pl.lit(None, dtype=pl.Float64),
            usage_trend=pl.lit(None, dtype=pl.Float64),
            region=pl.lit(None),
        )
        .drop("open_tickets")
    )
    features = [*FEATURES, "flag", "broken"]
    result = drift_report(
        reference, current, features, CATEGORICAL, {**IMPORTANCE, "flag": 0, "broken": 0}, report_dir=tmp_path
    )
    assert result.skipped == {
        "open_tickets": "missing from the current data",
        "usage_trend": "all values are null in the current data",
        "region": "all values are null in the current data",
        "flag": "constant: every value is 1 in both reference and current data",
        "broken": "all values are null in the reference data",
    }
    assert set(result.features) == {"plan", "monthly_price", "tenure_days", "sessions_7d", "minutes_7d"}
    assert result.passed is True and result.checked_weight == pytest.approx(910 / 1000)
    assert "5 feature(s) skipped" in result.reason and result.report_path is not None
    json.dumps(result.to_dict())  # Dagster metadata needs JSON


def test_when_no_feature_can_be_measured_the_whole_result_is_skipped():
    n = 1500
    reference = pl.DataFrame({"a": [None] * n, "b": ["x"] * n}, schema={"a": pl.Float64, "b": pl.String})
    current = pl.DataFrame({"b": ["x"] * n})
    result = drift_report(reference, current, ["a", "b"], ["b"])
    assert result.status == "skipped" and result.passed is None and result.report_path is None
    assert set(result.skipped) == {"a", "b"} and "no feature could be measured" in result.reason


def test_champion_reference_is_a_window_of_the_training_set_sampled_with_a_seed(tmp_path):
    days = [datetime(2024, 1, 1) + timedelta(days=7 * i) for i in range(10)]
    training = pl.DataFrame(
        {
            "customer_id": list(range(1000)),
            "event_timestamp": [days[i % 10] for i in range(1000)],
            "x": list(range(1000)),
        }
    )
    training.write_parquet(tmp_path / "training_set.parquet")
    meta = {"split": {"train": "2024-01-08..2024-02-05", "valid": "2024-02-12..2024-02-19"}}
    whole = drift.champion_reference(tmp_path / "training_set.parquet", meta)
    assert whole.height == 500
    assert (whole["event_timestamp"].min(), whole["event_timestamp"].max()) == (days[1], days[5])
    a = drift.champion_reference(training, meta, max_rows=100, seed=3)
    b = drift.champion_reference(training, meta, max_rows=100, seed=3)
    assert a.height == 100 and a.equals(b) and set(a["customer_id"]) <= set(whole["customer_id"])
    valid_only = drift.champion_reference(training, meta, parts=("valid",))
    assert sorted(valid_only["event_timestamp"].unique()) == [days[6], days[7]]
    both = drift.champion_reference(training, meta, parts=("train", "valid"))
    assert (both["event_timestamp"].min(), both["event_timestamp"].max()) == (days[1], days[7])
    with pytest.raises(ValueError, match="lacks the windows"):
        drift.champion_reference(training, {"split": {}})


def test_served_features_parses_logged_json_into_the_reference_dtypes():
    logged_at = datetime(2024, 3, 1, 12, tzinfo=UTC)
    log = pl.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5],
            "logged_at": [logged_at] * 5,
            "model_version": ["churn_model:a"] * 5,
            "features": [
                '{"plan": "basic", "tenure_days": 10, "usage_trend": 1.5}',
                '{"plan": null, "tenure_days": 11.0, "usage_trend": NaN}',
                '{"plan": "basic", "tenure_days": 1, "usage_trend": 1}',
                "not json",
                None,
            ],
            "error": [None, None, "unknown customer", None, None],
        }
    )
    schema = {"plan": pl.String, "tenure_days": pl.Int64, "usage_trend": pl.Float64}
    served = served_features(log, schema, "customer_id")
    assert served["customer_id"].to_list() == [1, 2]
    assert served.schema["tenure_days"] == pl.Int64 and served.schema["usage_trend"] == pl.Float64
    assert served.select(list(schema)).rows() == [("basic", 10, 1.5), (None, 11, None)]
    assert served_features(log.clear(), schema, "customer_id").columns == [
        "customer_id",
        "logged_at",
        "model_version",
        *schema,
    ]


# ----------------------------------------------------------------------------------- performance

AS_OF = [datetime(2024, 1, 1) + timedelta(days=7 * i) for i in range(6)]  # Mondays, weekly


def labelled_traffic(n_customers: int = 400, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Predictions on as-of days (version a in the first three weeks, b after) and weekly labels for them."""
    rng = np.random.default_rng(seed)
    labels, predictions = [], []
    for week, as_of in enumerate(AS_OF):
        y = rng.random(n_customers) < 0.2
        for c in range(n_customers):
            labels.append({"customer_id": c, "event_timestamp": as_of, "churned_30d": int(y[c])})
        # Version a ranks well, version b at random.
        score = (
            np.clip(np.where(y, 0.6, 0.3) + rng.normal(0, 0.15, n_customers), 0, 1)
            if week < 3
            else rng.random(n_customers)
        )
        for c in range(n_customers):
            predictions.append(
                {
                    "customer_id": c,
                    "logged_at": as_of.replace(tzinfo=UTC) + timedelta(hours=9),
                    "model_version": "churn_model:a" if week < 3 else "churn_model:b",
                    "score": float(score[c]),
                    "decision": bool(score[c] >= 0.5),
                    "error": None,
                }
            )
    return pl.DataFrame(predictions), pl.DataFrame(labels)


def test_live_performance_is_computed_per_day_and_version_only_where_labels_matured():
    predictions, labels = labelled_traffic()
    # Label data reaches 30 days after the 4th as-of date: weeks 5 and 6 have not matured.
    live = performance.live_performance(
        predictions, labels, **CHURN_LABELS, labels_known_until=AS_OF[3] + timedelta(days=30)
    )
    status = {w["day"]: (w["model_version"], w["status"]) for w in live["windows"]}
    assert status == {
        "2024-01-01": ("churn_model:a", "ok"),
        "2024-01-08": ("churn_model:a", "ok"),
        "2024-01-15": ("churn_model:a", "ok"),
        "2024-01-22": ("churn_model:b", "ok"),
        "2024-01-29": ("churn_model:b", "immature"),
        "2024-02-05": ("churn_model:b", "immature"),
    }
    immature = [w for w in live["windows"] if w["status"] == "immature"]
    assert all(w["roc_auc"] is None and w["f1"] is None and "mature" in w["reason"] for w in immature)
    versions = {v["model_version"]: v for v in live["by_version"]}
    assert versions["churn_model:a"]["labelled"] == 1200 and versions["churn_model:b"]["labelled"] == 400
    assert versions["churn_model:a"]["roc_auc"] > 0.85 and 0.4 < versions["churn_model:b"]["roc_auc"] < 0.6
    a = versions["churn_model:a"]
    assert (
        0 < a["precision"] <= 1
        and 0 < a["recall"] <= 1
        and a["f1"] == pytest.approx(2 * a["precision"] * a["recall"] / (a["precision"] + a["recall"]))
    )
    json.dumps(live)


def test_by_default_labels_are_known_up_to_the_newest_as_of_plus_the_horizon():
    predictions, labels = labelled_traffic(n_customers=150)
    live = performance.live_performance(predictions, labels, **CHURN_LABELS)
    assert live["labels_known_until"] == (AS_OF[-1] + timedelta(days=30)).isoformat()
    assert all(w["status"] == "ok" for w in live["windows"])


def test_a_prediction_takes_the_newest_label_at_most_six_days_older_and_repeats_count_once():
    labels = pl.DataFrame(
        {"customer_id": [1, 1, 2], "event_timestamp": [AS_OF[0], AS_OF[1], AS_OF[0]], "churned_30d": [0, 1, 1]}
    )
    at = lambda day, hour: AS_OF[0] + timedelta(days=day, hours=hour)  # noqa: E731
    predictions = pl.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2],
            "logged_at": [at(3, 1), at(3, 5), at(8, 0), at(7, 0), at(0, 2)],
            "model_version": ["a"] * 5,
            "score": [0.1, 0.2, 0.9, 0.5, 0.6],
            "decision": [False, False, True, True, True],
        }
    )
    joined = performance.label_predictions(predictions, labels, **CHURN_LABELS_JOIN)
    rows = {(r["customer_id"], r["day"].day): (r["score"], r["label"]) for r in joined.iter_rows(named=True)}
    # Day 3: the later of two predictions, label of as-of day 0; day 8: as-of day 7; customer 2 on
    # day 7 has no label that week and the week-old one is too old.
    assert rows == {(1, 4): (0.2, 0), (1, 9): (0.9, 1), (2, 8): (0.5, None), (2, 1): (0.6, 1)}


def test_single_class_and_tiny_windows_are_reported_with_no_metric_and_a_reason():
    predictions, labels = labelled_traffic(n_customers=150)
    labels = labels.with_columns(
        churned_30d=pl.when(pl.col("event_timestamp") == AS_OF[0]).then(0).otherwise(pl.col("churned_30d"))
    )
    live = performance.live_performance(predictions, labels, **CHURN_LABELS, min_rows=200)
    assert {w["status"] for w in live["windows"]} == {"too_few_rows"}
    assert all(w["roc_auc"] is None and "at least 200" in w["reason"] for w in live["windows"])
    first = performance.live_performance(
        predictions.filter(pl.col("logged_at").dt.day() == 1), labels, **CHURN_LABELS, min_rows=100
    )["windows"][0]
    assert first["status"] == "single_class" and first["roc_auc"] is None and first["recall"] is None
    assert "undefined" in first["reason"]


def test_performance_check_passes_within_the_margin_and_fails_below_it():
    predictions, labels = labelled_traffic()
    live = performance.live_performance(predictions, labels, **CHURN_LABELS)
    good = performance.performance_check(live, champion_holdout_auc=0.9, margin=0.05, model_version="churn_model:a")
    assert good["passed"] is True and good["live_auc"] > 0.85 and good["min_auc"] == pytest.approx(0.85)
    bad = performance.performance_check(live, champion_holdout_auc=0.9, margin=0.05, model_version="churn_model:b")
    assert bad["passed"] is False and "below" in bad["reason"]
    # Without a version, the one with the most labelled predictions is judged.
    assert performance.performance_check(live, 0.9, 0.05)["model_version"] == "churn_model:a"
    nothing = performance.performance_check(live, 0.9, 0.05, model_version="churn_model:zzz")
    assert nothing["passed"] is None and "no matured predictions" in nothing["reason"]


# -------------------------------------------------------------------------------------------- skew


def offline_features(n: int = 200) -> pl.DataFrame:
    """A feature table: one row per customer per day, stamped at midnight after the day."""
    rng = np.random.default_rng(12)
    days = [datetime(2024, 3, d) for d in (1, 2, 3)]
    return pl.DataFrame(
        {
            "customer_id": [c for _ in days for c in range(n)],
            "event_timestamp": [d for d in days for _ in range(n)],
            "minutes_7d": rng.gamma(2.0, 60.0, 3 * n),
            "plan": rng.choice(["basic", "premium"], 3 * n),
            "usage_trend": pl.Series(np.where(rng.random(3 * n) < 0.3, np.nan, rng.random(3 * n))).fill_nan(None),
        }
    )


def point_in_time(table: pl.DataFrame):
    """A recompute function: the newest feature row at or before each (entity, timestamp), like Feast's join."""

    def recompute(rows: pl.DataFrame) -> pl.DataFrame:
        rows = rows.with_columns(pl.col("event_timestamp").dt.replace_time_zone(None).cast(pl.Datetime("us")))
        return (
            rows.sort("event_timestamp")
            .join_asof(
                table.rename({"event_timestamp": "feature_time"}).sort("feature_time"),
                left_on="event_timestamp",
                right_on="feature_time",
                by="customer_id",
                check_sortedness=False,
            )
            .drop("feature_time")
        )

    return recompute


def test_skew_check_finds_the_rows_served_with_different_values():
    table = offline_features()
    features, categorical = ["minutes_7d", "plan", "usage_trend"], ["plan"]
    logged_at = datetime(2024, 3, 2, 15, tzinfo=UTC)
    served = (
        table.filter(pl.col("event_timestamp") == datetime(2024, 3, 2))
        .drop("event_timestamp")
        .with_columns(logged_at=pl.lit(logged_at), model_version=pl.lit("churn_model:a"))
    )
    # Float noise from a JSON/float32 round trip is not skew; nulls stay nulls.
    served = served.with_columns(minutes_7d=pl.col("minutes_7d") * (1 + 1e-9))
    clean = skew.skew_check(served, point_in_time(table), features, categorical, entity_key="customer_id")
    assert clean["passed"] is True and clean["mismatched_rows"] == 0 and clean["compared_rows"] == 200
    assert clean["sample_rows"] == 200 and clean["not_recomputed"] == 0

    broken = served.with_columns(
        minutes_7d=pl.when(pl.col("customer_id") < 10).then(pl.col("minutes_7d") + 1.0).otherwise(pl.col("minutes_7d")),
        plan=pl.when(pl.col("customer_id") == 50).then(pl.lit("gold")).otherwise(pl.col("plan")),
        usage_trend=pl.when(pl.col("customer_id") == 60).then(pl.lit(None)).otherwise(pl.col("usage_trend")),
    )
    expected_trend = int(served.filter(pl.col("customer_id") == 60)["usage_trend"].is_not_null().sum())
    result = skew.skew_check(
        broken, point_in_time(table), features, categorical, entity_key="customer_id", sample_size=None
    )
    assert {f: r["mismatches"] for f, r in result["features"].items()} == {
        "minutes_7d": 10,
        "plan": 1,
        "usage_trend": expected_trend,
    }
    assert result["mismatched_rows"] == 11 + expected_trend and result["passed"] is False
    example = next(e for e in result["examples"] if e["feature"] == "plan")
    assert example["customer_id"] == 50 and example["served"] == "gold" and example["recomputed"] != "gold"


def test_skew_check_samples_with_a_seed_and_counts_rows_the_recompute_dropped():
    table = offline_features()
    served = (
        table.filter(pl.col("event_timestamp") == datetime(2024, 3, 3))
        .drop("event_timestamp")
        .with_columns(logged_at=pl.lit(datetime(2024, 3, 3, 8, tzinfo=UTC)))
    )
    # Like Feast's `file` offline store, a recompute that silently loses rows.
    lossy = lambda rows: point_in_time(table)(rows).filter(pl.col("customer_id") % 2 == 0)  # noqa: E731
    a = skew.skew_check(served, lossy, ["minutes_7d"], (), entity_key="customer_id", sample_size=50, seed=1)
    b = skew.skew_check(served, lossy, ["minutes_7d"], (), entity_key="customer_id", sample_size=50, seed=1)
    assert a == b and a["sample_rows"] == 50 and a["compared_rows"] + a["not_recomputed"] == 50
    assert a["not_recomputed"] > 0


def test_skew_check_recomputes_through_feasts_point_in_time_join(paths):
    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.feature_store.feast_objects import apply_definitions, feature_store

    rng = np.random.default_rng(13)
    days = [datetime(2024, 3, d) for d in (1, 2, 3)]
    key = CHURN.entity_key
    for view in CHURN.feature_views:
        table = pl.DataFrame(
            {key: [c for _ in days for c in range(1, 21)], "event_timestamp": [d for d in days for _ in range(20)]}
        )
        for f in view.features:
            values = (
                rng.choice(["a", "b"], table.height)
                if f.dtype == "string"
                else rng.integers(0, 9, table.height)
                if f.dtype == "int64"
                else rng.random(table.height)
            )
            table = table.with_columns(pl.Series(f.name, values))
        paths.features(view.name).parent.mkdir(parents=True, exist_ok=True)
        table.write_parquet(paths.features(view.name))
    store = feature_store(paths)
    apply_definitions(store, CHURN, paths)
    features = [f.name for v in CHURN.feature_views for f in v.features]
    categorical = [f.name for v in CHURN.feature_views for f in v.features if f.dtype == "string"]
    # Served mid-day on March 2: the rows stamped March 2 00:00 are the newest known.
    usage = pl.read_parquet(paths.features("customer_usage"))
    served = pl.DataFrame({key: list(range(1, 21))})
    for view in CHURN.feature_views:
        served = served.join(
            pl.read_parquet(paths.features(view.name))
            .filter(pl.col("event_timestamp") == days[1])
            .drop("event_timestamp"),
            on=key,
        )
    served = served.with_columns(
        logged_at=pl.lit(datetime(2024, 3, 2, 12, tzinfo=UTC)),
        minutes_7d=pl.when(pl.col(key) == 7).then(pl.lit(-1.0)).otherwise(pl.col("minutes_7d")),
    )
    assert usage.height == 60
    result = skew.skew_check(
        served, skew.feast_recompute(store, CHURN), features, categorical, entity_key="customer_id"
    )
    assert result["compared_rows"] == 20 and result["not_recomputed"] == 0
    assert result["mismatched_rows"] == 1 and result["features"]["minutes_7d"]["mismatches"] == 1
    assert result["examples"] == [
        {
            key: 7,
            "logged_at": "2024-03-02 12:00:00",
            "feature": "minutes_7d",
            "served": -1.0,
            "recomputed": usage.filter((pl.col(key) == 7) & (pl.col("event_timestamp") == days[1]))[
                "minutes_7d"
            ].item(),
        }
    ]


def test_domain_drift_counts_served_rows_of_its_window_once_and_capped(lake, tmp_path):
    """A load test in the prediction log must not outweigh the population: same-window rows, deduplicated, capped."""
    import shutil

    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.lake.feature_tables import recent_features
    from lakehouse.ml import model_registry
    from lakehouse.ml.candidates import latest_candidate
    from lakehouse.paths import LakePaths
    from lakehouse.serving.prediction_log import SCHEMA, prediction_log_table

    paths = LakePaths(tmp_path / "data")
    shutil.copytree(lake.root, paths.root)
    tag = model_registry.champion(paths, "churn") or model_registry.promote(
        paths, "churn", latest_candidate(paths, CHURN), "test"
    )
    recent = recent_features(paths, CHURN, days=CHURN.drift_window_days)
    row = recent.row(0, named=True)
    features = json.dumps({f: row[f] for f in model_registry.model_metadata(paths, tag)["features"]}, default=str)
    inside = row["event_timestamp"].replace(tzinfo=UTC)
    outside = (recent["event_timestamp"].min() - timedelta(days=30)).replace(tzinfo=UTC)
    n = 3 * recent.height  # far more served rows than feature rows
    log = pl.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "row_index": [0] * n,
            "logged_at": [datetime.now(UTC)] * n,
            "endpoint": ["predict_ids"] * n,
            "entity_id": [str(i) for i in range(n)],
            "features": [features] * n,
            "features_at": [inside] * (n - 10) + [outside] * 10,
            "model_version": [tag] * n,
            "score": [0.1] * n,
            "decision": [False] * n,
            "latency_ms": [1.0] * n,
            "error": [None] * n,
        },
        schema=SCHEMA,
    )
    log = pl.concat([log, log.head(5)])  # a repeated (entity, feature time) counts once
    table = prediction_log_table(paths, "churn")
    table.parent.mkdir(parents=True, exist_ok=True)
    log.write_parquet(table)
    result = drift.domain_drift(paths, CHURN, tag)
    assert result.rows["current"] == recent.height + recent.height // 2
