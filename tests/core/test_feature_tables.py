"""Feature and label queries on hand-made silver tables: window edges and as-of correctness."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl
import pytest

from lakehouse.demos.churn.domain import CHURN
from lakehouse.io import write_parquet_atomic
from lakehouse.lake.feature_tables import build_feature_view, build_labels, build_spine
from lakehouse.lake.silver import empty_frame

D = date(2025, 1, 1)


def silver(paths, source: str, rows: list[dict]) -> None:
    frame = empty_frame(CHURN.source(source))
    rows = [{**r, "_batch_id": "test"} for r in rows]
    write_parquet_atomic(
        pl.concat([frame, pl.DataFrame(rows, schema=frame.schema)]) if rows else frame, paths.silver(source)
    )


def customer(cid: int, updated: datetime, plan: str = "basic", price: float = 9.99) -> dict:
    return {
        "customer_id": cid,
        "updated_at": updated,
        "signup_date": date(2024, 12, 1),
        "plan": plan,
        "monthly_price": price,
        "region": "north",
        "age_band": "25-34",
        "channel": "organic",
    }


@pytest.fixture
def built(paths):
    """Customer 1 has daily usage, a failed payment, a 2-day ticket and a plan change; 2-5 cancel."""
    silver(
        paths,
        "customers",
        [
            customer(1, datetime(2025, 1, 1, 8)),
            customer(1, datetime(2025, 1, 10, 15), "premium", 34.99),
            *(customer(c, datetime(2025, 1, 1, 8)) for c in (2, 3, 4, 5)),
        ],
    )
    silver(
        paths,
        "cancellations",
        [
            {"customer_id": 2, "cancelled_at": datetime(2025, 2, 15, 10), "reason": "price"},
            {"customer_id": 3, "cancelled_at": datetime(2025, 4, 24, 10), "reason": "usage"},
            {"customer_id": 4, "cancelled_at": datetime(2025, 4, 18), "reason": "other"},
            {"customer_id": 5, "cancelled_at": datetime(2025, 4, 17, 23, 59, 59), "reason": "other"},
        ],
    )
    silver(
        paths,
        "usage",
        [
            {
                "customer_id": 1,
                "usage_date": D + timedelta(i),
                "sessions": 1,
                "minutes": float(i + 1),
                "data_mb": 1.0,
                "errors": 0,
            }
            for i in range(40)
        ],
    )
    silver(
        paths,
        "payments",
        [{"payment_id": "P1", "customer_id": 1, "charged_at": datetime(2025, 1, 1, 9), "amount": 9.99, "failed": True}],
    )
    silver(
        paths,
        "tickets",
        [
            {
                "ticket_id": "T1",
                "customer_id": 1,
                "opened_at": datetime(2025, 1, 5, 9),
                "category": "billing",
                "resolved_at": datetime(2025, 1, 7, 12),
                "updated_at": datetime(2025, 1, 7, 12),
            }
        ],
    )
    build_spine(paths, CHURN)
    for view in CHURN.feature_views:
        build_feature_view(paths, CHURN, view)
    build_labels(paths, CHURN)
    return paths


def value(paths, view: str, feature: str, day: date, cid: int = 1):
    """The feature value stamped for the end of `day` (event_timestamp = day + 1 at midnight)."""
    table = pl.read_parquet(paths.features(view))
    ts = datetime.combine(day + timedelta(1), datetime.min.time())
    [v] = table.filter((pl.col("customer_id") == cid) & (pl.col("event_timestamp") == ts))[feature].to_list()
    return v


def test_spine_runs_from_first_appearance_to_cancellation(built):
    spine = pl.read_parquet(built.spine("churn"))
    days_2 = spine.filter(pl.col("customer_id") == 2)["day"]
    assert days_2.min() == D and days_2.max() == date(2025, 2, 15)
    assert spine.filter(pl.col("customer_id") == 1)["day"].max() == date(2025, 4, 24)  # the data's last day


def test_rolling_usage_windows_include_the_day_and_exclude_the_eighth_day_back(built):
    assert value(built, "customer_usage", "sessions_7d", D + timedelta(5)) == 6  # only 6 days of history
    assert value(built, "customer_usage", "sessions_7d", D + timedelta(7)) == 7
    assert value(built, "customer_usage", "minutes_7d", D + timedelta(7)) == sum(range(2, 9))  # days 2..8
    assert value(built, "customer_usage", "sessions_30d", D + timedelta(35)) == 30
    assert value(built, "customer_usage", "sessions_7d", D + timedelta(45)) == 1  # last usage on day 39
    assert value(built, "customer_usage", "usage_trend", D + timedelta(50)) == 0.0  # idle week, active month
    assert value(built, "customer_usage", "usage_trend", D + timedelta(80)) is None  # idle month: undefined


def test_failed_payment_windows_end_after_30_and_90_days(built):
    assert value(built, "customer_billing", "failed_payments_30d", D + timedelta(29)) == 1
    assert value(built, "customer_billing", "failed_payments_30d", D + timedelta(30)) == 0
    assert value(built, "customer_billing", "failed_payments_90d", D + timedelta(89)) == 1
    assert value(built, "customer_billing", "failed_payments_90d", D + timedelta(90)) == 0


def test_a_ticket_is_open_from_its_opening_day_until_the_day_it_is_resolved(built):
    opened = [value(built, "customer_support", "open_tickets", date(2025, 1, d)) for d in (4, 5, 6, 7)]
    assert opened == [0, 1, 1, 0]
    assert value(built, "customer_support", "tickets_30d", date(2025, 2, 3)) == 1
    assert value(built, "customer_support", "tickets_30d", date(2025, 2, 4)) == 0


def test_profile_shows_a_plan_change_only_after_it_happened(built):
    assert value(built, "customer_profile", "plan", date(2025, 1, 9)) == "basic"
    assert value(built, "customer_profile", "plan", date(2025, 1, 10)) == "premium"
    assert value(built, "customer_profile", "tenure_days", date(2025, 1, 10)) == 40


def test_labels_mark_cancellations_within_30_days_of_each_weekly_as_of_date(built):
    labels = pl.read_parquet(built.labels("churn"))
    as_of = sorted(set(labels["event_timestamp"].to_list()))
    assert as_of[0] == datetime(2025, 2, 5) and as_of[-1] == datetime(2025, 3, 19)
    assert all((b - a) == timedelta(7) for a, b in zip(as_of, as_of[1:], strict=False))
    by = {(r["customer_id"], r["event_timestamp"]): r["churned_30d"] for r in labels.iter_rows(named=True)}
    assert by[(2, datetime(2025, 2, 12))] == 1
    assert (2, datetime(2025, 2, 19)) not in by  # already gone: no label for a cancelled customer
    assert by[(4, datetime(2025, 3, 19))] == 0  # cancels exactly 30 days later: outside the window
    assert by[(5, datetime(2025, 3, 19))] == 1  # one second earlier: inside
    assert by[(1, datetime(2025, 3, 19))] == 0


def test_recent_features_is_the_newest_window_or_the_window_ending_at_a_given_time(built):
    """`until` replays the drift window of a past day: the same rows the newest window had on that day."""
    from lakehouse.lake.feature_tables import recent_features

    newest = recent_features(built, CHURN, days=7)
    times = newest["event_timestamp"].unique().sort().to_list()
    assert len(times) == 7 and times[-1] == pl.read_parquet(built.features("customer_profile"))["event_timestamp"].max()
    until = datetime(2025, 1, 20)
    past = recent_features(built, CHURN, days=7, until=until)
    assert past["event_timestamp"].unique().sort().to_list() == [until - timedelta(days=d) for d in range(6, -1, -1)]
    assert past.filter(pl.col("customer_id") == 1)["minutes_7d"].to_list() == [
        value(built, "customer_usage", "minutes_7d", (t - timedelta(days=1)).date())
        for t in past.filter(pl.col("customer_id") == 1)["event_timestamp"]
    ]
    everything_before = recent_features(built, CHURN, days=None, until=until)
    assert everything_before["event_timestamp"].max() == until and everything_before.height > past.height
