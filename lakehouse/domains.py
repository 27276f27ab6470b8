"""The domains this installation knows, by name: the built-in demos and every dataset file (lakehouse/declarations/datasets.py).

The one place that registers built-in domains.
"""

from __future__ import annotations

from lakehouse.declarations.domain import Domain
from lakehouse.demos.churn.domain import CHURN

BUILT_IN: dict[str, Domain] = {CHURN.name: CHURN}  # declared in Python; every other domain is a dataset file


def load_domains() -> dict[str, Domain]:
    """The built-in domains plus one domain per dataset file in datasets_dir() (read now, so new files count)."""
    from lakehouse.declarations.datasets import DatasetSpecError, load_datasets, to_domain

    domains = dict(BUILT_IN)
    for name, spec in load_datasets().items():
        if name in domains:
            raise DatasetSpecError(f"dataset {name!r} has the name of the built-in {name} demo; rename it")
        domains[name] = to_domain(spec)
    sources = [s.name for d in domains.values() for s in d.sources]
    clashes = sorted({s for s in sources if sources.count(s) > 1})
    if clashes:
        raise DatasetSpecError(f"two domains declare the sources {clashes}; dataset names must differ from them")
    return domains


def get_domain(name: str) -> Domain:
    """The domain called `name`, or a clear error listing the known ones."""
    domains = load_domains()
    try:
        return domains[name]
    except KeyError:
        raise KeyError(
            f"unknown dataset {name!r}; known: {sorted(domains)} (add one with `lakehouse dataset add`)"
        ) from None
