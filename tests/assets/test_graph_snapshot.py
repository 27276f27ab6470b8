"""The whole Dagster graph of the built-in domains under a snapshot: a graph change is a reviewed diff.

After an intended change, rewrite the snapshot with `UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/assets/test_graph_snapshot.py`
and commit tests/assets/snapshots/graph.json with the change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).parent / "snapshots" / "graph.json"

# Run in a fresh interpreter with no user datasets, so only the built-in domains are in the graph.
DESCRIBE = """
import json
import dagster as dg
from assets.definitions import defs

graph = defs.resolve_asset_graph()
assets = {}
for key in sorted(graph.get_all_asset_keys()):
    node = graph.get(key)
    assets[key.to_user_string()] = {
        "group": node.group_name,
        "deps": sorted(k.to_user_string() for k in node.parent_keys),
        "kinds": sorted(node.kinds),
        "pools": sorted(node.pools or []),
    }
checks = {}
for check in sorted(graph.asset_check_keys, key=lambda c: c.to_user_string()):
    spec = graph.get_check_spec(check)
    checks[check.to_user_string()] = {"blocking": spec.blocking}
jobs = {}
for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
    if job.name.startswith("__"):
        continue
    jobs[job.name] = sorted(k.to_user_string() for k in job.asset_layer.executable_asset_keys)
sensors = {}
for sensor in sorted(defs.sensors, key=lambda s: s.name):
    sensors[sensor.name] = {"jobs": sorted(t.job_name for t in sensor.targets),
                            "minimum_interval_seconds": sensor.minimum_interval_seconds,
                            "default_status": sensor.default_status.value}
print(json.dumps({"assets": assets, "checks": checks, "jobs": jobs, "sensors": sensors}, indent=1, sort_keys=True))
"""


def describe_graph(tmp_path: Path) -> dict:
    """Asset keys with groups, deps, kinds and pools; checks; jobs with their assets; sensors."""
    env = {**os.environ, "LAKEHOUSE_DATASETS_DIR": str(tmp_path), "LAKEHOUSE_DATA_ROOT": str(tmp_path / "data")}
    out = subprocess.run(
        [sys.executable, "-c", DESCRIBE],
        env=env,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_the_asset_graph_matches_its_reviewed_snapshot(tmp_path):
    graph = describe_graph(tmp_path)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(graph, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    changed = sorted(
        f"{part}: {name}"
        for part in expected.keys() | graph.keys()
        for name in expected.get(part, {}).keys() | graph.get(part, {}).keys()
        if expected.get(part, {}).get(name) != graph.get(part, {}).get(name)
    )
    assert not changed, (
        "the asset graph differs from tests/assets/snapshots/graph.json in: "
        + ", ".join(changed)
        + "; if intended, rerun with UPDATE_SNAPSHOTS=1 and commit the snapshot"
    )
