"""The baselines of bench/bench_serving.py: bare BentoML services that answer /predict_ids with a constant.

    bentoml serve bench.bare_service:BareService --host 127.0.0.1 --port PORT   (from the repo root)

Same bentoml.service options as bentos.churn_service:ChurnService (workers=1, 127.0.0.1, 30 s timeout)
and the same kind of API (a sync method, so BentoML runs it in its thread pool too), so the difference
between the two is what the churn service does per request: validation, Feast lookup, scoring, logging.
BareService is written as BentoML's docs write a service; TypedBareService also declares its media type
as ChurnService does (BentoML otherwise derives it from a JSON schema on every response), for reference.
"""

from __future__ import annotations

from typing import Annotated, Any

import bentoml
from bentoml.validators import ContentType

# Shaped like a real single-customer answer of ChurnService, so JSON encoding costs about the same.
CONSTANT: dict[str, Any] = {
    "model_version": "churn_model:bare",
    "threshold": 0.5,
    "predictions": [
        {
            "customer_id": 1,
            "score": 0.5,
            "decision": True,
            "model_version": "churn_model:bare",
            "missing_features": [],
            "features_as_of": "2025-05-01T00:00:00+00:00",
            "feature_age_hours": 0.0,
            "stale": False,
            "stale_features": [],
        }
    ],
}

# ChurnService's options (bentos/service.py): one worker on 127.0.0.1, a 30 s timeout.
OPTIONS: dict[str, Any] = {"http": {"host": "127.0.0.1", "port": 3001}, "traffic": {"timeout": 30}, "workers": 1}


@bentoml.service(name="bare_service", **OPTIONS)
class BareService:
    """Returns the same constant for every request: the cost of BentoML alone."""

    @bentoml.api
    def predict_ids(self, customer_ids: list[int]) -> dict[str, Any]:
        """The constant answer, whatever the ids."""
        return CONSTANT


@bentoml.service(name="typed_bare_service", **OPTIONS)
class TypedBareService:
    """BareService with its response media type declared, as ChurnService declares it."""

    @bentoml.api
    def predict_ids(self, customer_ids: list[int]) -> Annotated[dict[str, Any], ContentType("application/json")]:
        """The constant answer, whatever the ids."""
        return CONSTANT
