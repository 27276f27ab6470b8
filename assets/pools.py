"""Concurrency pools: which runs may go side by side (dagster.yaml: pools at run granularity, limit 1).

A landing run writes only its own source's files (bronze, validated, silver), so landing runs for
different sources run in parallel; everything else shares the Feast registry and online store, the
DuckDB catalog and the model store of the whole data root, so those runs go one at a time.
"""

from lakehouse.declarations.domain import Domain, Source

LAKE_POOL = "lake"


def source_pool(domain: Domain, source: Source) -> str:
    """The pool of one source's files: one run at a time appends to its silver table."""
    return f"{domain.name}_{source.name}_files"
