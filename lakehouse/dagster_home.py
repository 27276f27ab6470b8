"""DAGSTER_HOME: a folder under the data root with an instance config that serializes runs."""

from __future__ import annotations

from pathlib import Path

from lakehouse.paths import LakePaths

# One run at a time: sensor runs for different files all rewrite silver and features.
INSTANCE_YAML = """\
# Written by lakehouse; edit freely (it is not overwritten).
concurrency:
  runs:
    max_concurrent_runs: 1
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
