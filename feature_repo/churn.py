"""Feast definitions of the churn domain: the customer entity, its four feature views and churn_model_v1.

Built from the domain declaration in lakehouse/demos/churn/domain.py so the pipeline and `feast apply` agree.
"""

from lakehouse.demos.churn.domain import CHURN
from lakehouse.feature_store.feast_objects import feast_objects
from lakehouse.paths import LakePaths

# Feast collects entities, sources, views and services from this module's attributes.
globals().update(feast_objects(CHURN, LakePaths.from_env()).by_name())
