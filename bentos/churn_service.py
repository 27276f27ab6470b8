"""The churn demo behind HTTP: `bentoml serve bentos.churn_service:ChurnService` (from the repo root; `make serve`).

Everything but the example row is the generic service in bentos/service.py (endpoints: bentos/README.md).
"""

from bentos.service import make_service
from lakehouse.demos.churn.domain import CHURN

EXAMPLE_ROW = {
    "plan": "premium",
    "monthly_price": 34.99,
    "region": "north",
    "age_band": "25-34",
    "channel": "organic",
    "tenure_days": 849,
    "sessions_7d": 1,
    "minutes_7d": 11.35,
    "data_mb_7d": 38.37,
    "errors_7d": 0,
    "active_days_7d": 1,
    "sessions_30d": 1,
    "minutes_30d": 11.35,
    "errors_30d": 0,
    "usage_trend": 4.29,
    "failed_payments_90d": 0,
    "failed_payments_30d": 0,
    "payments_90d": 3,
    "amount_charged_90d": 104.97,
    "open_tickets": 0,
    "tickets_30d": 0,
}

ChurnService = make_service(CHURN, example_id=1, example_row=EXAMPLE_ROW, port=3001)
