"""Hands-off under the real Dagster daemon (`lakehouse dev`), the demo beside an event-grain dataset: quiet without
new labels, and a kill mid-publish loses nothing and repeats nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import psutil
import pytest
from bento_process import free_port
from conftest import SMALL, copy_with_champion
from quirky_data import write_quirky_dataset

from assets.dagster_home import ORPHANED_TAG
from assets.keys import DomainKeys
from lakehouse.declarations.datasets import DATASETS_ENV
from lakehouse.demos.churn.domain import CHURN
from lakehouse.demos.churn.generator import GeneratorConfig, generate
from lakehouse.domains import get_domain
from lakehouse.lake.ingestion import manifest
from lakehouse.monitoring.retraining import last_decision
from lakehouse.paths import DATA_ROOT_ENV, REPO_ROOT, LakePaths

# Longer than the retraining cooldown (180 s): a trigger that re-fires every cooldown would show in it.
QUIET_SECONDS = float(os.environ.get("LAKEHOUSE_DAEMON_QUIET_SECONDS", "200"))
LAKEHOUSE = str(REPO_ROOT / ".venv" / "bin" / "lakehouse")


@contextmanager
def lakehouse_dev(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`lakehouse dev` (UI, daemon, code server) in its own process group; SIGKILLed with everything it started."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [LAKEHOUSE, "dev", "--port", str(free_port())],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            kill_everything(proc)


def kill_everything(proc: subprocess.Popen) -> None:
    """kill -9 of the process group and of every descendant (run workers may start sessions of their own)."""
    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def wait_for(what: str, condition: Callable[[], object], timeout: float, log: Path) -> object:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what} (log: {log})"
        time.sleep(1)
    return value


def runs(
    instance: dg.DagsterInstance, job: str, statuses: list | None = None, since: datetime | None = None
) -> list[dg.DagsterRun]:
    runs_filter = dg.RunsFilter(job_name=job, statuses=statuses or [], created_after=since)
    return [r.dagster_run for r in instance.get_run_records(runs_filter)]


@pytest.mark.integration  # a real daemon
@pytest.mark.slow
def test_the_daemon_retrains_nothing_without_new_labels_and_a_kill_mid_publish_publishes_each_batch_once(
    lake: LakePaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = copy_with_champion(lake, tmp_path)
    home = paths.root / "dagster"
    env = {
        **os.environ,
        DATA_ROOT_ENV: str(paths.root),
        "DAGSTER_HOME": str(home),
        DATASETS_ENV: str(tmp_path / "datasets"),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    log = tmp_path / "dev.log"
    # Beside the demo, an event-grain dataset of the user's own with its first champion.
    orders = write_quirky_dataset(tmp_path / "raw", rows=3000, seed=5, days=60)
    add = ["dataset", "add", "orders", "--source", str(tmp_path / "raw" / "events-*"), "--entity", orders["entity"]]
    add += ["--timestamp", orders["timestamp"], "--label", orders["label"], "--drop", *orders["drop"]]
    subprocess.run([LAKEHOUSE, *add], env=env, check=True, capture_output=True)
    subprocess.run([LAKEHOUSE, "run", "orders"], env=env, check=True, capture_output=True)
    monkeypatch.setenv(DATASETS_ENV, env[DATASETS_ENV])
    domains = [CHURN, get_domain("orders")]
    keys = DomainKeys.of(CHURN)
    publish_job, retrain_job = keys.publish_job, keys.retrain_job
    landing_jobs = [keys.landing_job(s.name) for s in CHURN.sources]

    daemon_started = datetime.now(UTC)
    with lakehouse_dev(env, log) as dev:
        # 1. Nothing new: each domain's retraining sensor keeps deciding, and never asks for a run.
        copied = {d.name: (last_decision(paths, d) or {}).get("at", "") for d in domains}
        first = {
            d.name: wait_for(
                f"the daemon's first retraining decision for {d.name}",
                lambda d=d: (r := last_decision(paths, d)) and r["at"] > copied[d.name] and r,
                180,
                log,
            )
            for d in domains
        }
        time.sleep(QUIET_SECONDS)
        assert dev.poll() is None, f"lakehouse dev exited (log: {log})"
        with dg.DagsterInstance.from_config(str(home)) as instance:
            retrain_jobs = [DomainKeys.of(d).retrain_job for d in domains]
            assert [r.run_id for job in retrain_jobs for r in runs(instance, job, since=daemon_started)] == []
        for d in domains:
            quiet = last_decision(paths, d)
            assert quiet["at"] > first[d.name]["at"] and quiet["fire"] is False, quiet
            assert "new label events" in quiet["reason"]

        # 2. A new day lands; while its publish run works, everything is killed.
        world = {**SMALL, "days": SMALL["days"] + 1, "bad_row_rate": 0.01, "bad_file_rate": 0.02}  # the lake's
        generate(paths.landing, GeneratorConfig(**world, first_day=SMALL["days"]))
        with dg.DagsterInstance.from_config(str(home)) as instance:

            def publishing_the_new_day() -> list[dg.DagsterRun]:
                landed = any(runs(instance, job, [dg.DagsterRunStatus.SUCCESS]) for job in landing_jobs)
                return landed and runs(instance, publish_job, [dg.DagsterRunStatus.STARTED])

            [killed] = wait_for("a publish run after the new day's landing runs", publishing_the_new_day, 300, log)
        time.sleep(3)  # inside the run, past its start
        kill_everything(dev)
    restarted = datetime.now(UTC)

    # 3. Started again: the killed run is released and the new day is published, once.
    with lakehouse_dev(env, log), dg.DagsterInstance.from_config(str(home)) as instance:

        def settled() -> bool:
            """Nothing in flight, and a publish run finished since the restart."""
            in_flight = [r for r in instance.get_runs() if not r.is_finished]
            done = instance.get_run_records(
                dg.RunsFilter(job_name=publish_job, statuses=[dg.DagsterRunStatus.SUCCESS], created_after=restarted)
            )
            return not in_flight and bool(done)

        wait_for("the killed publish redone and everything finished", settled, 420, log)
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(killed.run_id).tags.get(ORPHANED_TAG) == "true"
        retrain_keys = [r.tags.get("dagster/run_key") for r in runs(instance, retrain_job)]
        assert len(retrain_keys) == len(set(retrain_keys)), f"a retraining requested twice: {retrain_keys}"

    # Every landing file is in exactly one batch, and no silver or feature row is doubled.
    for source in CHURN.sources:
        records = manifest(paths, source.name)
        assert not [sha for sha, n in Counter(r["sha256"] for r in records).items() if n > 1]
        silver = pl.read_parquet(paths.silver(source.name))
        assert silver.height == silver.unique().height, f"{source.name}: duplicated silver rows"
    usage = pl.read_parquet(paths.features("customer_usage"))
    newest = usage["event_timestamp"].max()
    assert newest > pl.read_parquet(lake.features("customer_usage"))["event_timestamp"].max()
    assert usage.select(CHURN.entity_key, "event_timestamp").is_duplicated().sum() == 0
