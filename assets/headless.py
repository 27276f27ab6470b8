"""Run the asset graph without the UI: "Materialize all", or one domain as its sensors would run it."""

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg

from assets.definitions import build_definitions
from assets.keys import DomainKeys
from lakehouse.domains import get_domain
from lakehouse.lock import data_root_lock
from lakehouse.monitoring.retraining import Decision
from lakehouse.paths import LakePaths


def dagster_instance(paths: LakePaths) -> dg.DagsterInstance:
    """The persistent Dagster instance under DAGSTER_HOME (headless runs show up in the UI), its orphans released."""
    from assets.dagster_home import ensure_dagster_home

    instance = dg.DagsterInstance.from_config(str(ensure_dagster_home(paths)))
    report_orphaned_runs(instance)
    return instance


def report_orphaned_runs(instance: dg.DagsterInstance) -> None:
    """Release the runs a killed process left STARTED (their pools would block every later run) and say so."""
    from assets.dagster_home import release_orphaned_runs

    for run_id in release_orphaned_runs(instance):
        print(f"run {run_id} had lost its process (killed?): marked failed", file=sys.stderr)


def materialize_all(
    paths: LakePaths, instance: dg.DagsterInstance | None = None, log_level: str = "INFO"
) -> dg.ExecuteInProcessResult:
    """Run every asset and asset check of every domain once, in dependency order."""
    defs = build_definitions(str(paths.root))
    job = defs.resolve_implicit_global_asset_job_def()
    # Step events are DEBUG; INFO keeps the assets' own progress lines (files skipped, rows written).
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    instance = instance or dagster_instance(paths)
    with one_writer(paths, instance):
        return job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False)


@contextmanager
def one_writer(paths: LakePaths, instance: dg.DagsterInstance) -> Iterator[None]:
    """The data root's lock, then no daemon run still writing: a headless run never writes beside another."""
    with data_root_lock(paths):
        announced: set[str] = set()
        while running := instance.get_runs(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
        ):
            for run in running:
                if run.run_id not in announced:
                    print(f"waiting for run {run.run_id[:8]} ({run.job_name}) to finish", file=sys.stderr, flush=True)
                    announced.add(run.run_id)
            time.sleep(2)
        yield


@dataclass
class DomainRun:
    """What `lakehouse run NAME` did: the update run, the retraining decision, and the retraining run if any."""

    update: dg.ExecuteInProcessResult
    decision: Decision
    retraining: dg.ExecuteInProcessResult | None


def run_domain(
    paths: LakePaths,
    domain: str,
    retrain: bool = True,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
) -> DomainRun:
    """Everything but training, then the retraining sensor's own decision, then the retraining it asks for.

    The same policy as under the daemon, taken the same way and recorded the same way; `retrain=False`
    records the decision without acting on it.
    """
    from assets.sensors import retrain_request, retraining_decision

    declared = get_domain(domain)
    keys = DomainKeys.of(declared)
    defs = build_definitions(str(paths.root))
    instance = instance or dagster_instance(paths)
    loggers = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    tags = {"lakehouse/started_by": "lakehouse run"}
    with one_writer(paths, instance):
        update = defs.resolve_job_def(keys.update_job).execute_in_process(
            run_config=loggers, instance=instance, raise_on_error=False, tags=tags
        )
        decision = retraining_decision(instance, paths, declared)
        retraining = None
        if decision.fire and retrain:
            request = retrain_request(declared, decision)
            retraining = defs.resolve_job_def(keys.retrain_job).execute_in_process(
                run_config={**request.run_config, **loggers},
                instance=instance,
                raise_on_error=False,
                tags={**tags, **request.tags},
            )
    return DomainRun(update, decision, retraining)


def failed_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    """Steps that raised (a skipped step, held back by a blocking check, is not a failure)."""
    return [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


def failed_checks(result: dg.ExecuteInProcessResult) -> list[tuple[str, str]]:
    """(check, severity) of every asset check that did not pass."""
    return [
        (e.asset_check_evaluation_data.asset_check_key.to_user_string(), e.asset_check_evaluation_data.severity.value)
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]


@dataclass
class Outcome:
    """What headless runs left to report: failed steps, failed data checks (ERROR), monitoring findings."""

    steps: list[str]
    errors: list[str]
    findings: list[str]


def outcome(results: list[dg.ExecuteInProcessResult], domain_names: list[str]) -> Outcome:
    """Sort the runs' failures: a failed monitoring check is a finding about the world, not a broken run."""
    monitoring = {
        k.to_user_string() for name in domain_names for k in DomainKeys.of(get_domain(name)).monitoring_checks.values()
    }
    checks = [c for r in results for c in failed_checks(r)]
    return Outcome(
        steps=[s for r in results for s in failed_steps(r)],
        errors=[c for c, severity in checks if c not in monitoring and severity == "ERROR"],
        findings=[c for c, _ in checks if c in monitoring],
    )
