"""The domains this installation knows, by name."""

from __future__ import annotations

from lakehouse.domain import Domain
from lakehouse.domains.churn import CHURN

DOMAINS: dict[str, Domain] = {CHURN.name: CHURN}


def get_domain(name: str) -> Domain:
    """The domain called `name`, or a clear error listing the known ones."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise KeyError(f"unknown domain {name!r}; known domains: {sorted(DOMAINS)}") from None
