"""The subscription-churn demo domain: who will cancel within 30 days, so retention can reach them."""

from __future__ import annotations

from lakehouse.declarations.domain import Column, Costs, Domain, Feature, FeatureView, Source

PLANS = ("basic", "standard", "premium")
REGIONS = ("north", "south", "east", "west")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
CHANNELS = ("organic", "paid_search", "social", "referral", "partner")
TICKET_CATEGORIES = ("billing", "technical", "account", "cancellation")
CANCEL_REASONS = ("price", "usage", "support", "payment", "other")

CUSTOMER_ID = Column("customer_id", "int64", ge=1, description="customer account id")

SOURCES = (
    Source(
        name="customers",
        description="Customer records from the CRM: one row per signup or plan change.",
        columns=(
            CUSTOMER_ID,
            Column("updated_at", "datetime", not_in_future=True, description="when this version took effect"),
            Column("signup_date", "date", not_in_future=True),
            Column("plan", "string", isin=PLANS),
            Column("monthly_price", "float64", ge=0, le=1000),
            Column("region", "string", isin=REGIONS),
            Column("age_band", "string", isin=AGE_BANDS),
            Column("channel", "string", isin=CHANNELS, description="acquisition channel"),
        ),
        unique_key=("customer_id", "updated_at"),
        silver_key=("customer_id", "updated_at"),  # keeps every version: profile features are as-of
    ),
    Source(
        name="usage",
        description="Daily product usage per customer from the app's telemetry.",
        columns=(
            CUSTOMER_ID,
            Column("usage_date", "date", not_in_future=True),
            Column("sessions", "int64", ge=0, le=10_000),
            Column("minutes", "float64", ge=0, le=1440),
            Column("data_mb", "float64", ge=0),
            Column("errors", "int64", ge=0),
        ),
        unique_key=("customer_id", "usage_date"),
        silver_key=("customer_id", "usage_date"),  # a re-sent day replaces the earlier one
    ),
    Source(
        name="payments",
        description="Monthly charges from the billing system, including failed ones.",
        columns=(
            Column("payment_id", "string"),
            CUSTOMER_ID,
            Column("charged_at", "datetime", not_in_future=True),
            Column("amount", "float64", ge=0, le=10_000),
            Column("failed", "bool"),
        ),
        unique_key=("payment_id",),
        silver_key=("payment_id",),
    ),
    Source(
        name="tickets",
        description="Support tickets: a row when opened and another when resolved.",
        columns=(
            Column("ticket_id", "string"),
            CUSTOMER_ID,
            Column("opened_at", "datetime", not_in_future=True),
            Column("category", "string", isin=TICKET_CATEGORIES),
            Column("resolved_at", "datetime", nullable=True, not_in_future=True),
            Column("updated_at", "datetime", not_in_future=True),
        ),
        unique_key=("ticket_id", "updated_at"),
        silver_key=("ticket_id",),
        version_column="updated_at",  # the resolution row supersedes the opening row
    ),
    Source(
        name="cancellations",
        description="Subscription cancellations: the source of the churn label.",
        columns=(
            CUSTOMER_ID,
            Column("cancelled_at", "datetime", not_in_future=True),
            Column("reason", "string", isin=CANCEL_REASONS),
        ),
        unique_key=("customer_id",),
        silver_key=("customer_id",),
    ),
)

# One row per customer per day from their first appearance to their cancellation (or the data's end).
SPINE_SQL = """
WITH first_seen AS (
    SELECT customer_id, min(updated_at)::DATE AS first_day FROM customers GROUP BY customer_id
), cancelled AS (
    SELECT customer_id, min(cancelled_at)::DATE AS cancel_day FROM cancellations GROUP BY customer_id
), horizon AS (
    SELECT min(updated_at)::DATE AS first_day,
           greatest(max(updated_at)::DATE,
                    (SELECT coalesce(max(cancelled_at)::DATE, DATE '1900-01-01') FROM cancellations)) AS last_day
    FROM customers
)
SELECT f.customer_id,
       CAST(unnest(generate_series(greatest(f.first_day, h.first_day)::TIMESTAMP,
                                   least(coalesce(c.cancel_day, h.last_day), h.last_day)::TIMESTAMP,
                                   INTERVAL 1 DAY)) AS DATE) AS day
FROM first_seen f CROSS JOIN horizon h LEFT JOIN cancelled c USING (customer_id)
"""

# Every feature row for day D is stamped D + 1 day (midnight after D): it is known only once D is over.
PROFILE_SQL = """
SELECT s.customer_id, s.day + INTERVAL 1 DAY AS event_timestamp,
       c.plan, c.monthly_price, c.region, c.age_band, c.channel,
       CAST(datediff('day', c.signup_date, s.day) AS BIGINT) AS tenure_days
FROM spine s ASOF LEFT JOIN customers c
  ON s.customer_id = c.customer_id AND s.day + INTERVAL 1 DAY > c.updated_at
"""

USAGE_SQL = """
WITH daily AS (
    SELECT s.customer_id, s.day,
           coalesce(u.sessions, 0) AS sessions, coalesce(u.minutes, 0.0) AS minutes,
           coalesce(u.data_mb, 0.0) AS data_mb, coalesce(u.errors, 0) AS errors
    FROM spine s LEFT JOIN usage u ON u.customer_id = s.customer_id AND u.usage_date = s.day
)
SELECT customer_id, day + INTERVAL 1 DAY AS event_timestamp,
       CAST(sum(sessions) OVER w7 AS BIGINT) AS sessions_7d,
       sum(minutes) OVER w7 AS minutes_7d,
       sum(data_mb) OVER w7 AS data_mb_7d,
       CAST(sum(errors) OVER w7 AS BIGINT) AS errors_7d,
       CAST(count(*) FILTER (WHERE sessions > 0) OVER w7 AS BIGINT) AS active_days_7d,
       CAST(sum(sessions) OVER w30 AS BIGINT) AS sessions_30d,
       sum(minutes) OVER w30 AS minutes_30d,
       CAST(sum(errors) OVER w30 AS BIGINT) AS errors_30d,
       -- Daily averages over the days the customer existed, so a new customer's trend is not inflated.
       (sum(minutes) OVER w7 / count(*) OVER w7) / nullif(sum(minutes) OVER w30 / count(*) OVER w30, 0) AS usage_trend
FROM daily
WINDOW w7 AS (PARTITION BY customer_id ORDER BY day RANGE BETWEEN INTERVAL 6 DAYS PRECEDING AND CURRENT ROW),
       w30 AS (PARTITION BY customer_id ORDER BY day RANGE BETWEEN INTERVAL 29 DAYS PRECEDING AND CURRENT ROW)
"""

BILLING_SQL = """
WITH charges AS (
    SELECT customer_id, CAST(charged_at AS DATE) AS day, count(*) AS charges,
           count(*) FILTER (WHERE failed) AS failed, sum(amount) AS amount
    FROM payments GROUP BY ALL
), daily AS (
    SELECT s.customer_id, s.day, coalesce(c.charges, 0) AS charges, coalesce(c.failed, 0) AS failed,
           coalesce(c.amount, 0.0) AS amount
    FROM spine s LEFT JOIN charges c USING (customer_id, day)
)
SELECT customer_id, day + INTERVAL 1 DAY AS event_timestamp,
       CAST(sum(failed) OVER w90 AS BIGINT) AS failed_payments_90d,
       CAST(sum(failed) OVER w30 AS BIGINT) AS failed_payments_30d,
       CAST(sum(charges) OVER w90 AS BIGINT) AS payments_90d,
       sum(amount) OVER w90 AS amount_charged_90d
FROM daily
WINDOW w30 AS (PARTITION BY customer_id ORDER BY day RANGE BETWEEN INTERVAL 29 DAYS PRECEDING AND CURRENT ROW),
       w90 AS (PARTITION BY customer_id ORDER BY day RANGE BETWEEN INTERVAL 89 DAYS PRECEDING AND CURRENT ROW)
"""

SUPPORT_SQL = """
WITH opened AS (
    SELECT customer_id, CAST(opened_at AS DATE) AS day, count(*) AS n FROM tickets GROUP BY ALL
), resolved AS (
    SELECT customer_id, CAST(resolved_at AS DATE) AS day, count(*) AS n
    FROM tickets WHERE resolved_at IS NOT NULL GROUP BY ALL
), daily AS (
    SELECT s.customer_id, s.day, coalesce(o.n, 0) AS opened, coalesce(r.n, 0) AS resolved
    FROM spine s LEFT JOIN opened o USING (customer_id, day) LEFT JOIN resolved r USING (customer_id, day)
)
SELECT customer_id, day + INTERVAL 1 DAY AS event_timestamp,
       CAST(sum(opened - resolved) OVER (PARTITION BY customer_id ORDER BY day
                                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS BIGINT) AS open_tickets,
       CAST(sum(opened) OVER w30 AS BIGINT) AS tickets_30d
FROM daily
WINDOW w30 AS (PARTITION BY customer_id ORDER BY day RANGE BETWEEN INTERVAL 29 DAYS PRECEDING AND CURRENT ROW)
"""

FEATURE_VIEWS = (
    FeatureView(
        name="customer_profile",
        description="Plan, price, region, age band, acquisition channel and tenure as of each day.",
        sources=("customers",),
        features=(
            Feature("plan", "string"),
            Feature("monthly_price", "float64"),
            Feature("region", "string"),
            Feature("age_band", "string"),
            Feature("channel", "string"),
            Feature("tenure_days", "int64", "days since signup"),
        ),
        sql=PROFILE_SQL,
    ),
    FeatureView(
        name="customer_usage",
        description="Rolling 7- and 30-day usage and the 7-vs-30-day minutes trend.",
        sources=("usage",),
        features=(
            Feature("sessions_7d", "int64"),
            Feature("minutes_7d", "float64"),
            Feature("data_mb_7d", "float64"),
            Feature("errors_7d", "int64"),
            Feature("active_days_7d", "int64", "days with at least one session in the last 7"),
            Feature("sessions_30d", "int64"),
            Feature("minutes_30d", "float64"),
            Feature("errors_30d", "int64"),
            Feature(
                "usage_trend", "float64", "average daily minutes, last 7 / last 30 days; null when 30-day minutes are 0"
            ),
        ),
        sql=USAGE_SQL,
    ),
    FeatureView(
        name="customer_billing",
        description="Charges and failed payments over the last 30 and 90 days.",
        sources=("payments",),
        features=(
            Feature("failed_payments_90d", "int64"),
            Feature("failed_payments_30d", "int64"),
            Feature("payments_90d", "int64"),
            Feature("amount_charged_90d", "float64"),
        ),
        sql=BILLING_SQL,
    ),
    FeatureView(
        name="customer_support",
        description="Support tickets still open at the end of each day and tickets opened in 30 days.",
        sources=("tickets",),
        features=(
            Feature("open_tickets", "int64"),
            Feature("tickets_30d", "int64"),
        ),
        sql=SUPPORT_SQL,
    ),
)

# Weekly as-of dates for customers active the day before; the label needs 30 days of hindsight,
# so as-of dates stop 30 days before the data's last day (labels that have not matured are not made).
LABEL_SQL = """
WITH horizon AS (
    SELECT min(day) AS first_day, max(day) AS last_day FROM spine
), as_of AS (
    SELECT CAST(unnest(generate_series((first_day + 35)::TIMESTAMP, (last_day - 30)::TIMESTAMP,
                                       INTERVAL 7 DAY)) AS DATE) AS as_of
    FROM horizon
), cancelled AS (
    SELECT customer_id, min(cancelled_at) AS cancelled_at FROM cancellations GROUP BY customer_id
)
SELECT s.customer_id, CAST(a.as_of AS TIMESTAMP) AS event_timestamp,
       CAST(c.cancelled_at IS NOT NULL AND c.cancelled_at < a.as_of + INTERVAL 30 DAY AS BIGINT) AS churned_30d
FROM as_of a
JOIN spine s ON s.day = a.as_of - 1
LEFT JOIN cancelled c USING (customer_id)
WHERE c.cancelled_at IS NULL OR c.cancelled_at >= a.as_of
"""

CHURN = Domain(
    name="churn",
    prediction="Will this customer cancel their subscription within the next 30 days?",
    decision="Whether to offer the customer a retention discount.",
    entity="customer",
    entity_key="customer_id",
    entity_description="A subscription customer account.",
    sources=SOURCES,
    spine_sources=("customers", "cancellations"),
    spine_sql=SPINE_SQL,
    feature_views=FEATURE_VIEWS,
    label_sources=("cancellations",),
    label_sql=LABEL_SQL,
    label_name="churned_30d",
    costs=Costs(false_positive=10.0, false_negative=150.0),  # a discount offer vs a lost year of revenue
    risk_category="minimal",
    success_measure="Expected retention value per customer scored, above the no-model baseline.",
    slices=("plan", "region", "age_band"),
    service="bentos.churn_service:ChurnService",
    drift_window_days=7,  # a row per active customer per day: a week is ~50,000 rows at the demo's size
)
