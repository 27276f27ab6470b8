"""Feast's point-in-time training set against a brute-force as-of oracle on thousands of label events."""

from __future__ import annotations

import duckdb
import polars as pl
from polars.testing import assert_frame_equal

from lakehouse.demos.churn.domain import CHURN


def oracle(lake) -> pl.DataFrame:
    """For every label row and view: the newest feature row at or before the label time, within the view's ttl."""
    con = duckdb.connect()
    query = f"SELECT * FROM read_parquet('{lake.labels('churn')}')"
    for view in CHURN.feature_views:
        cols = ", ".join(f"f.{f.name}" for f in view.features)
        ttl_seconds = int(view.ttl.total_seconds())
        # Every (label, feature row) pair is compared: no as-of join shortcut, nothing clever.
        query = f"""
            SELECT l.*, {cols} FROM ({query}) l
            LEFT JOIN read_parquet('{lake.features(view.name)}') f
              ON f.customer_id = l.customer_id
             AND f.event_timestamp <= l.event_timestamp
             AND f.event_timestamp > l.event_timestamp - INTERVAL {ttl_seconds} SECOND
            QUALIFY row_number() OVER (PARTITION BY l.customer_id, l.event_timestamp
                                       ORDER BY f.event_timestamp DESC NULLS LAST) = 1
        """
    return con.sql(query).pl().sort("event_timestamp", "customer_id")


def test_training_set_equals_the_as_of_oracle_with_no_row_dropped(lake):
    training = pl.read_parquet(lake.training_set("churn"))
    expected = oracle(lake)
    assert training.height == pl.read_parquet(lake.labels("churn")).height == expected.height > 1000
    assert_frame_equal(training.select(expected.columns), expected, check_dtypes=False)


def test_no_feature_comes_from_after_the_label_time(lake):
    """Shifting every label one day earlier must change usage features: they move daily, so a leak would show."""
    training = pl.read_parquet(lake.training_set("churn"))
    usage = pl.read_parquet(lake.features("customer_usage"))
    later = training.join(usage, on=["customer_id", "event_timestamp"], how="inner", suffix="_f")
    # At an as-of time T the row stamped T (the day before T, completed) is the one used, never T + 1 day.
    assert (later["sessions_7d"] == later["sessions_7d_f"]).all()
    next_day = usage.with_columns(pl.col("event_timestamp") - pl.duration(days=1))
    leaked = training.join(next_day, on=["customer_id", "event_timestamp"], how="inner", suffix="_next")
    assert (leaked["sessions_7d"] != leaked["sessions_7d_next"]).any()
