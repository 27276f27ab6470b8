"""Feast definitions of every user dataset (datasets/*.yaml), built from the same declarations as the pipeline's."""

from lakehouse.declarations.datasets import load_datasets, to_domain
from lakehouse.feature_store.feast_objects import feast_objects
from lakehouse.paths import LakePaths

# Feast collects entities, sources, views and services from this module's attributes.
for _spec in load_datasets().values():
    globals().update(feast_objects(to_domain(_spec), LakePaths.from_env()).by_name())
