"""Drift thresholds calibrated from the reference's time chunks: no alarm on a world that moves as it always
did, an alarm on a real change, on daily snapshots and on one-row-per-case data alike."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from lakehouse.declarations.domain import DriftConfig
from lakehouse.monitoring.drift import drift_report
from lakehouse.monitoring.drift_calibration import time_chunks

FEATURES = ["tenure", "usage", "plan"]
IMPORTANCE = {"tenure": 50.0, "usage": 40.0, "plan": 10.0}
START = datetime(2025, 1, 1)


def world(
    days: range, rows_per_day: int, seed: int, grain: str, usage_step: float = 0.0, plan_shift: float = 0.0
) -> pl.DataFrame:
    """A world whose `tenure` drifts steadily (0.005 sd a day), `usage` and `plan` stable unless shifted.

    snapshot: every row of a day at that day's midnight (an as-of date); event: each row a case at its own time.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for day in days:
        n = rows_per_day
        at = START + timedelta(days=day)
        times = (
            [at] * n
            if grain == "snapshot"
            else [at + timedelta(seconds=float(s)) for s in np.sort(rng.uniform(0, 86_400, n))]
        )
        p = np.array([0.5, 0.3, 0.2]) + np.array([-plan_shift, plan_shift, 0.0])
        frames.append(
            pl.DataFrame(
                {
                    "event_timestamp": times,
                    "tenure": rng.normal(0.005 * day, 1.0, n),
                    "usage": rng.gamma(2.0, 30.0, n) * (1 + usage_step),
                    "plan": rng.choice(["basic", "standard", "premium"], n, p=p),
                }
            )
        )
    return pl.concat(frames)


def check(reference: pl.DataFrame, current: pl.DataFrame, config: DriftConfig = DriftConfig()):
    return drift_report(
        reference.drop("event_timestamp"),
        current.drop("event_timestamp"),
        FEATURES,
        ["plan"],
        IMPORTANCE,
        config,
        times=(reference["event_timestamp"], current["event_timestamp"]),
    )


@pytest.fixture(params=["snapshot", "event"])
def grain(request) -> str:
    return request.param


def reference_of(grain: str) -> pl.DataFrame:
    """Eight weeks of history: weekly as-of dates (snapshot) or cases every day (event)."""
    days = range(0, 56, 7) if grain == "snapshot" else range(0, 56)
    return world(days, 2000 if grain == "snapshot" else 300, seed=1, grain=grain)


# The current window: a week, a month after the reference ends (the label horizon of a 30-day outcome).
CURRENT_DAYS = range(86, 93)


def test_a_world_that_keeps_its_own_pace_passes_where_fixed_thresholds_cry_wolf(grain):
    reference, current = reference_of(grain), world(CURRENT_DAYS, 2000, seed=2, grain=grain)
    fixed = check(reference, current, DriftConfig(calibrate=False))
    assert not fixed.passed and "tenure" in fixed.drifted  # the baseline alarms on the trend it always had
    calibrated = check(reference, current)
    assert calibrated.passed, calibrated.reason
    assert calibrated.calibration["chunks"] >= 3
    assert "thresholds from" in calibrated.reason
    tenure = calibrated.calibration["features"]["tenure"]
    assert tenure["pace_per_day"] > 0 and calibrated.features["tenure"]["threshold"] > fixed.features["tenure"]["score"]
    assert calibrated.calibration["features"]["usage"]["pace_per_day"] < tenure["pace_per_day"] / 2


def test_a_step_change_in_a_stable_feature_fails_and_is_named(grain):
    reference = reference_of(grain)
    current = world(CURRENT_DAYS, 2000, seed=3, grain=grain, usage_step=0.15)
    result = check(reference, current)
    assert not result.passed and "usage" in result.drifted, result.reason


def test_a_small_real_shift_in_a_feature_that_never_moves_is_flagged_though_below_the_fixed_threshold(grain):
    reference = reference_of(grain)
    current = world(CURRENT_DAYS, 2000, seed=4, grain=grain, plan_shift=0.06)
    fixed = check(reference, current, DriftConfig(calibrate=False))
    calibrated = check(reference, current)
    assert "plan" not in fixed.drifted
    assert "plan" in calibrated.drifted
    assert calibrated.features["plan"]["threshold"] < DriftConfig().categorical_threshold


def test_a_reference_too_short_to_chunk_keeps_the_fixed_thresholds_and_says_so():
    reference = world(range(0, 14, 7), 2000, seed=5, grain="snapshot")  # two as-of dates
    current = world(range(20, 27), 2000, seed=6, grain="snapshot")
    result = check(reference, current)
    assert result.calibration is None
    assert "fixed thresholds (the reference has fewer than 3 time chunks" in result.reason
    assert result.features["usage"]["threshold"] == DriftConfig().numeric_threshold


def test_a_threshold_set_for_a_feature_is_kept_and_the_share_limit_is_a_floor(grain):
    reference, current = reference_of(grain), world(CURRENT_DAYS, 2000, seed=7, grain=grain)
    config = replace(DriftConfig(), thresholds={"usage": 0.5}, max_weighted_drift_share=0.45)
    result = check(reference, current, config)
    assert result.features["usage"]["threshold"] == 0.5
    assert result.max_weighted_drift_share >= 0.45


def test_time_chunks_keep_whole_times_in_order_with_enough_rows_each():
    times = pl.Series("t", [1] * 500 + [2] * 500 + [3] * 3000 + [4] * 500 + [5] * 500)
    chunks = time_chunks(times, max_chunks=10, min_rows=400)
    assert [t for c in chunks for t in c] == [1, 2, 3, 4, 5]
    sizes = [int(times.is_in(c).sum()) for c in chunks]
    assert min(sizes) >= 400 and len(chunks) >= 3
    assert len(time_chunks(times, max_chunks=10, min_rows=2000)) < 3  # too few rows for 3 chunks of 2,000


def test_a_feature_far_beyond_its_threshold_fails_the_check_whatever_its_weight(grain):
    """A price rise moves a feature the champion barely uses: it is caught before its effect on labels shows."""
    reference = reference_of(grain)
    current = world(CURRENT_DAYS, 2000, seed=8, grain=grain, plan_shift=0.2)
    result = check(reference, current)
    assert result.weighted_drifted_share <= result.max_weighted_drift_share  # plan carries 10% of the importance
    assert not result.passed and "far beyond their thresholds: plan" in result.reason
    assert check(reference, current, DriftConfig(calibrate=False)).features["plan"]["drifted"]


def test_a_feature_that_only_recently_has_values_is_calibrated_without_a_crash(grain):
    """A column added to the data later: all null in the older chunks and half, measured where it exists."""
    reference = reference_of(grain)
    first_day = reference["event_timestamp"].min()
    reference = reference.with_columns(
        pl.when(pl.col("event_timestamp") < first_day + timedelta(days=40)).then(None).otherwise(pl.col("usage"))
    )
    current = world(CURRENT_DAYS, 2000, seed=9, grain=grain)
    result = check(reference, current)
    assert result.calibration is not None
    assert all(math.isfinite(v["threshold"]) for v in result.features.values())
