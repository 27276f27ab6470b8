"""DAGSTER_HOME: a folder under the data root, with an instance config that never runs two writers of the same files at once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

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
# A run the daemon launched whose worker never started (a killed `dagster dev`) is failed after this long,
# so it does not hold its pools forever; runs whose worker died later are released by lakehouse itself.
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
"""


def ensure_dagster_home(paths: LakePaths) -> Path:
    """Create DAGSTER_HOME (default: <data root>/dagster) with dagster.yaml if missing; return it."""
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return home


ORPHANED_TAG = "lakehouse/orphaned"  # on a run failed by release_orphaned_runs: the sensors request it again


def killed_run_keys(instance: Any) -> Counter[str]:
    """How many runs were killed (and released) per run key, retries counted under the key they retried."""
    import dagster as dg

    return Counter(
        r.dagster_run.tags.get("dagster/run_key", "").split(AFTER_KILL)[0]
        for r in instance.get_run_records(dg.RunsFilter(tags={ORPHANED_TAG: "true"}))
    )


def run_key_after_kills(run_key: str, killed: Counter[str]) -> str:
    """The run key to request `run_key`'s work under: itself, or a new one per earlier attempt that was killed.

    Dagster never runs a run key twice, so work whose run was killed would otherwise never be redone;
    a run that failed on its own keeps its key (no retry storm on a real error).
    """
    return f"{run_key}{AFTER_KILL}{killed[run_key]}" if killed[run_key] else run_key


AFTER_KILL = ":after-kill-"


def release_orphaned_runs(instance: Any) -> list[str]:
    """Fail the in-progress runs whose worker process is gone (a `kill -9`, an OOM kill), so their pools free up.

    Dagster's default run launcher cannot check a worker's health, so a run whose process died stays
    STARTED forever and, with run-level pools, every later run that touches the lake waits behind it.
    The worker's pid is in the run's engine events (the daemon's worker, or a headless command running
    it in process); a run without one is left alone.
    """
    import dagster as dg
    import psutil

    released = []
    in_progress = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    for record in instance.get_run_records(dg.RunsFilter(statuses=in_progress)):
        run = record.dagster_run
        worker = _worker(instance, run.run_id)
        if worker is None or _alive(psutil, *worker):
            continue
        pid = worker[0]
        instance.add_run_tags(run.run_id, {ORPHANED_TAG: "true"})
        instance.report_run_failed(
            run, f"its run worker (pid {pid}) is gone (killed?): marked failed so the runs behind it can start"
        )
        released.append(run.run_id)
    return released


def _worker(instance: Any, run_id: str) -> tuple[int, float] | None:
    """The pid of the run's worker process, and when it said so (a Unix time).

    The first engine event with a pid is the worker's (the daemon's "Started process for run", or a
    headless command's "Executing steps in process"); later ones may be step subprocesses that end.
    """
    import dagster as dg

    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = (data.metadata or {}).get("pid") if data else None
        if pid is not None:
            return int(pid.value), entry.timestamp
    return None


def _alive(psutil: Any, pid: int, since: float) -> bool:
    """A process with that pid runs and is older than the event (not a later process that reused the pid)."""
    try:
        return psutil.Process(pid).create_time() <= since + 1
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
