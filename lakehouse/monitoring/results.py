"""Where a domain's monitoring results live, and the newest result of each kind (for `lakehouse status`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lakehouse.declarations.domain import Domain
from lakehouse.io import write_json_atomic
from lakehouse.paths import LakePaths


def monitoring_dir(paths: LakePaths, domain: Domain) -> Path:
    """<data root>/monitoring/<domain>/: drift reports, retraining decisions."""
    return paths.monitoring(domain.name)


def save_latest(paths: LakePaths, domain: Domain, kind: str, record: Mapping[str, Any]) -> Path:
    """Keep a monitoring result as <monitoring dir>/<kind>_latest.json (for `lakehouse status`)."""
    stamped = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
    return write_json_atomic(
        json.loads(json.dumps(stamped, default=str)), monitoring_dir(paths, domain) / f"{kind}_latest.json"
    )


def latest_result(paths: LakePaths, domain: Domain, kind: str) -> dict[str, Any] | None:
    """The newest saved monitoring result of a kind ("drift", "performance"), or None."""
    path = monitoring_dir(paths, domain) / f"{kind}_latest.json"
    return json.loads(path.read_text()) if path.exists() else None
