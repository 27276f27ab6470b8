"""A run whose process was killed must not hold its pools forever: it is failed, live and unknown runs are kept."""

from __future__ import annotations

import os
import subprocess
import time

import dagster as dg
from dagster._core.events import EngineEventData

from assets.dagster_home import _alive, killed_run_keys, release_orphaned_runs, run_key_after_kills


@dg.op
def noop() -> None:
    pass


@dg.job
def publish_job() -> None:
    noop()


def started_run(instance: dg.DagsterInstance, worker_pid: int | None) -> str:
    run = instance.create_run_for_job(publish_job, status=dg.DagsterRunStatus.STARTED)
    if worker_pid is not None:
        instance.report_engine_event(
            f"Started process for run (pid: {worker_pid}).", run, EngineEventData.in_process(worker_pid)
        )
    return run.run_id


def dead_pid() -> int:
    process = subprocess.Popen(["sleep", "30"])
    process.kill()
    process.wait()
    return process.pid


def test_only_runs_whose_worker_process_is_gone_are_failed() -> None:
    with dg.instance_for_test() as instance:
        killed = started_run(instance, dead_pid())
        alive = started_run(instance, os.getpid())
        unknown = started_run(instance, None)
        assert release_orphaned_runs(instance) == [killed]
        assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
        assert "is gone" in str([e.message for e in instance.all_logs(killed, of_type=dg.DagsterEventType.RUN_FAILURE)])
        assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(unknown).status == dg.DagsterRunStatus.STARTED
        assert release_orphaned_runs(instance) == []  # nothing twice


def test_a_pid_reused_by_a_newer_process_does_not_count_as_the_worker() -> None:
    """The worker died and the OS gave its pid to a later process: that process started after the run's event."""
    import psutil

    process = subprocess.Popen(["sleep", "30"])
    try:
        assert _alive(psutil, process.pid, since=time.time())  # started before the event: the worker
        assert not _alive(psutil, process.pid, since=time.time() - 3600)  # started an hour after it
        assert not _alive(psutil, dead_pid(), since=time.time())
    finally:
        process.kill()
        process.wait()


def test_work_whose_run_was_killed_gets_a_new_run_key_per_kill_and_a_failed_run_keeps_its_key() -> None:
    """Dagster never runs a run key twice: a killed landing or publish run must be requestable again."""
    with dg.instance_for_test() as instance:

        def run_with_key(key: str, pid: int | None) -> str:
            run = instance.create_run_for_job(
                publish_job, status=dg.DagsterRunStatus.STARTED, tags={"dagster/run_key": key}
            )
            if pid is not None:
                instance.report_engine_event("Started process for run.", run, EngineEventData.in_process(pid))
            return run.run_id

        failed_on_its_own = run_with_key("publish:7", os.getpid())
        instance.report_run_failed(instance.get_run_by_id(failed_on_its_own), "a real error")
        assert run_key_after_kills("publish:7", killed_run_keys(instance)) == "publish:7"

        run_with_key("usage:abc", dead_pid())
        release_orphaned_runs(instance)
        assert run_key_after_kills("usage:abc", killed_run_keys(instance)) == "usage:abc:after-kill-1"
        run_with_key("usage:abc:after-kill-1", dead_pid())  # the retry was killed too
        release_orphaned_runs(instance)
        assert run_key_after_kills("usage:abc", killed_run_keys(instance)) == "usage:abc:after-kill-2"
