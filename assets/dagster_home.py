"""DAGSTER_HOME: a folder under the data root, with an instance config that never runs two writers of the same files at once."""

from __future__ import annotations

from pathlib import Path

from lakehouse.paths import LakePaths

# Two runs at a time (one per core), but never two that write the same files: every asset is in a
# pool (assets/pools.py), and at run granularity a run starts only when none of its pools is in use.
INSTANCE_YAML = """\
# Written by lakehouse; edit freely (it is not overwritten).
concurrency:
  runs:
    max_concurrent_runs: 2
  pools:
    # A run waits while another run uses any of its pools: landing runs of different sources go side
    # by side, anything touching the shared lake (features, Feast, models, monitoring) goes alone.
    granularity: run
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_dagster_home(paths: LakePaths) -> Path:
    """Create DAGSTER_HOME (default: <data root>/dagster) with dagster.yaml if missing; return it."""
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return home
