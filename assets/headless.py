"""Materialize the whole asset graph without the UI (what "Materialize all" does)."""

import dagster as dg

from assets.definitions import build_definitions
from assets.keys import DomainKeys
from lakehouse.domains import get_domain
from lakehouse.paths import LakePaths


def dagster_instance(paths: LakePaths) -> dg.DagsterInstance:
    """The persistent Dagster instance under DAGSTER_HOME, so headless runs show up in the UI."""
    from assets.dagster_home import ensure_dagster_home

    return dg.DagsterInstance.from_config(str(ensure_dagster_home(paths)))


def materialize_all(
    paths: LakePaths, instance: dg.DagsterInstance | None = None, log_level: str = "INFO"
) -> dg.ExecuteInProcessResult:
    """Run every asset and asset check of every domain once, in dependency order."""
    defs = build_definitions(str(paths.root))
    job = defs.resolve_implicit_global_asset_job_def()
    # Step events are DEBUG; INFO keeps the assets' own progress lines (files skipped, rows written).
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    return job.execute_in_process(
        run_config=run_config, instance=instance or dagster_instance(paths), raise_on_error=False
    )


def materialize_domain(
    paths: LakePaths, domain: str, instance: dg.DagsterInstance | None = None, log_level: str = "INFO"
) -> dg.ExecuteInProcessResult:
    """Run every asset and check of one domain (its `<domain>_all_job`), in dependency order."""
    job = build_definitions(str(paths.root)).resolve_job_def(DomainKeys.of(get_domain(domain)).all_job)
    run_config = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    return job.execute_in_process(
        run_config=run_config, instance=instance or dagster_instance(paths), raise_on_error=False
    )


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
