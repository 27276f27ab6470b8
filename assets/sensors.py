"""Sensors: landing (one run per new file), publishing once per burst, and retraining.

The landing sensor keys each run by the file's content hash; a landing run stops at silver. The
publish sensor runs the publish job (features offline and online, batch scores, monitoring) once a
burst of landing runs is done. The retraining sensor fires on new data or a failed drift/performance
check, within a cooldown and never beside a retraining run in flight.
"""

import json
import time
from datetime import datetime
from itertools import zip_longest

import dagster as dg

from assets.dagster_home import killed_run_keys, run_key_after_kills
from assets.keys import DomainKeys
from assets.resources import LakehouseResource
from lakehouse.declarations.domain import Domain
from lakehouse.lake.ingestion import LandingMemory, landing_files, sha256_file
from lakehouse.lock import holder
from lakehouse.monitoring.retraining import Decision, FailedCheck, RetrainState, decide, record_decision
from lakehouse.paths import LakePaths


def landing_sensor(domain: Domain, jobs: list) -> dg.SensorDefinition:
    """Watch data/landing/<source>/ and request one run per new file (run key = source + SHA-256)."""
    keys = DomainKeys.of(domain)

    @dg.sensor(
        name=keys.landing_sensor,
        jobs=jobs,
        minimum_interval_seconds=15,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One run per new landing file, deduplicated by content hash.",
    )
    def _sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
        paths = lakehouse.paths
        if busy := headless_writer(paths):
            return busy
        # The cursor caches hashes by (size, mtime) so unchanged files are not re-read every tick.
        seen: dict[str, list] = json.loads(context.cursor) if context.cursor else {}
        killed = killed_run_keys(context.instance)  # files whose landing run was killed are requested again
        per_source: list[list[dg.RunRequest]] = []
        skipped = 0
        for source in domain.sources:
            requests: list[dg.RunRequest] = []
            known = LandingMemory.load(paths, source.name)
            for path in landing_files(paths, source.landing_folder):
                stat = path.stat()
                cached = seen.get(str(path))
                if cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
                    sha = cached[2]
                else:
                    sha = sha256_file(path)
                    seen[str(path)] = [stat.st_size, stat.st_mtime_ns, sha]
                if known.earlier(path.name, sha) is not None:
                    skipped += 1
                    continue
                requests.append(
                    dg.RunRequest(
                        run_key=run_key_after_kills(f"{source.name}:{sha}", killed),
                        job_name=keys.landing_job(source.name),
                        run_config={
                            "ops": {keys.bronze(source).to_python_identifier(): {"config": {"files": [str(path)]}}}
                        },
                        tags={"lakehouse/source": source.name, "lakehouse/file": path.name, "lakehouse/sha256": sha},
                    )
                )
            per_source.append(requests)
        context.update_cursor(json.dumps(seen))
        # Sources take turns (each in file order): the queue then starts runs that can go side by side
        # (a source's files share a pool, assets/pools.py) instead of a backlog of one source first.
        requests = [r for turn in zip_longest(*per_source) for r in turn if r is not None]
        if not requests:
            return dg.SkipReason(f"no new landing files ({skipped} already ingested or rejected)")
        return requests

    return _sensor


# The queue starts two runs at a time (pools decide which may pair up); a burst of landing files must not
# keep publishing and retraining waiting behind it (Dagster's queue dequeues higher dagster/priority first).
JUMP_THE_QUEUE = {"dagster/priority": "1"}

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def _in_flight(instance: dg.DagsterInstance, job_name: str) -> list[str]:
    """Run ids (short) of the job's runs queued or running."""
    runs = instance.get_run_records(dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT), limit=5)
    return [r.dagster_run.run_id[:8] for r in runs]


def newest_silver(instance: dg.DagsterInstance, domain: Domain) -> int | None:
    """The storage id of the newest materialization of any of the domain's silver tables (None: never built)."""
    ids = [
        records[0].storage_id
        for source in domain.sources
        if (records := instance.fetch_materializations(DomainKeys.of(domain).silver(source), limit=1).records)
    ]
    return max(ids, default=None)


def publish_sensor(domain: Domain) -> dg.SensorDefinition:
    """After new silver data, publish and monitor once (not beside a publish or landing run)."""
    keys = DomainKeys.of(domain)
    job_name = keys.publish_job

    @dg.sensor(
        name=keys.publish_sensor,
        job_name=job_name,
        minimum_interval_seconds=20,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests a publish run (features, online store, batch scores, monitoring) once new "
        "data reached silver and no landing run is queued or running.",
    )
    def _sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
        if busy := headless_writer(lakehouse.paths):
            return busy
        newest = newest_silver(context.instance, domain)
        if newest is None:
            return dg.SkipReason("the silver tables have never been materialized")
        run_key = run_key_after_kills(f"publish:{newest}", killed_run_keys(context.instance))
        # Published already, unless that run was killed and has not been re-run since.
        redo = run_key != f"publish:{newest}" and not context.instance.get_run_records(
            dg.RunsFilter(tags={"dagster/run_key": run_key}), limit=1
        )
        if context.cursor and int(context.cursor) >= newest and not redo:
            return dg.SkipReason(f"no silver materialization since {context.cursor}")
        busy = _in_flight(context.instance, job_name)
        if busy:
            return dg.SkipReason(f"publish run {', '.join(busy)} in flight; the next tick catches up")
        # One publish run per burst of landing files: between every file it would starve them, and
        # would put half a day's files online.
        landing = [run for s in domain.sources for run in _in_flight(context.instance, keys.landing_job(s.name))]
        if landing:
            return dg.SkipReason(f"{len(landing)} landing run(s) queued or running; publishing once they are done")
        context.update_cursor(str(newest))
        return dg.RunRequest(run_key=run_key, tags={"lakehouse/trigger": f"silver:{newest}", **JUMP_THE_QUEUE})

    return _sensor


def retraining_sensor(domain: Domain) -> dg.SensorDefinition:
    """Request retraining on new data or a failed drift/performance check, with cooldown and in-flight guards."""
    keys = DomainKeys.of(domain)
    job_name = keys.retrain_job

    @dg.sensor(
        name=keys.retraining_sensor,
        job_name=job_name,
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Fires on enough new label events or a failed drift/performance check; every "
        "decision and its reason is on the tick and in data/monitoring/<domain>/.",
    )
    def _sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
        if busy := headless_writer(lakehouse.paths):
            return busy
        decision = retraining_decision(context.instance, lakehouse.paths, domain)
        # The tick's logs ("View logs" in the UI) show the reason; a skipped tick's message alone is not shown.
        context.log.info(("retraining requested: " if decision.fire else "no retraining: ") + decision.reason)
        if not decision.fire:
            return dg.SkipReason(decision.reason)
        return retrain_request(domain, decision)

    return _sensor


def headless_writer(paths: LakePaths) -> dg.SkipReason | None:
    """A skip while a headless command holds the data root (lakehouse/lock.py): it runs alone, as it waits for us."""
    who = holder(paths)
    if who is None:
        return None
    return dg.SkipReason(f"`{who.get('command')}` (pid {who.get('pid')}) is writing this data root; the next tick")


def retraining_decision(instance: dg.DagsterInstance, paths: LakePaths, domain: Domain) -> Decision:
    """The retraining policy's decision now, recorded for `lakehouse status`: the sensor's and `lakehouse run`'s."""
    state = retrain_state(instance, paths, domain, DomainKeys.of(domain).monitoring_checks)
    decision = decide(state, domain.retraining)
    record_decision(paths, domain, decision, state)
    return decision


def retrain_request(domain: Domain, decision: Decision) -> dg.RunRequest:
    """The retrain job's run for a decision to fire (its run key deduplicates the trigger)."""
    keys = DomainKeys.of(domain)
    run_config = {}
    if decision.trigger != "first_model":
        # A short search that starts from the champion's hyperparameters: the loop's latency is mostly tuning.
        tuning = {"trials": domain.retraining.tuning_trials, "warm_start": True}
        run_config = {"ops": {keys.model_candidate.to_python_identifier(): {"config": tuning}}}
    return dg.RunRequest(
        run_key=decision.run_key,
        job_name=keys.retrain_job,
        run_config=run_config,
        tags={
            "lakehouse/retrain_trigger": decision.trigger,
            "lakehouse/retrain_reason": decision.reason[:200],
            **JUMP_THE_QUEUE,
        },
    )


def newest_evaluation(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> tuple | None:
    """(record, evaluation) of a check's newest finished evaluation.

    The newest execution record is often a queued run's placeholder (planned, no evaluation yet),
    which would hide a failure evaluated just before it.
    """
    for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=20):
        evaluation = record.event.asset_check_evaluation if record.event else None
        if evaluation is not None:
            return record, evaluation
    return None


def retrain_state(
    instance: dg.DagsterInstance, paths: LakePaths, domain: Domain, checks: dict[str, dg.AssetCheckKey]
) -> RetrainState:
    """What the retraining decision needs, from the Dagster instance and the lake."""
    from lakehouse.ml.candidates import latest_training
    from lakehouse.ml.training_set import new_label_events

    training = latest_training(paths, domain)
    last = training["tag"] if training else None
    trained_at = datetime.fromisoformat(training["trained_at"]).timestamp() if training else None
    failed = []
    for name, key in checks.items():
        found = newest_evaluation(instance, key)
        # Only a failure evaluated after the last training counts: older ones were already acted on.
        if found is not None and not found[1].passed and (trained_at is None or found[0].event.timestamp > trained_at):
            failed.append(FailedCheck(name, found[0].id, found[1].description or ""))
    runs = instance.get_run_records(dg.RunsFilter(job_name=DomainKeys.of(domain).retrain_job), limit=1)
    since = time.time() - runs[0].create_timestamp.timestamp() if runs else None
    last_trigger = runs[0].dagster_run.tags.get("lakehouse/retrain_trigger") if runs else None
    return RetrainState(
        last_trained=last,
        new_labels=new_label_events(paths, domain),
        trained_rows=int(training.get("training_rows", 0)) if training else 0,
        failed_checks=failed,
        in_flight=_in_flight(instance, DomainKeys.of(domain).retrain_job),
        seconds_since_last_request=since,
        last_trigger=last_trigger,
    )
