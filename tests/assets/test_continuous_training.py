"""End to end: drifted batches land, the sensors act as the daemon would, and a better model gets served."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from bento_process import bentoml_serve, post_json
from conftest import GATE_STEP, sensor_tick

from assets.definitions import build_definitions
from assets.headless import failed_checks, failed_steps, materialize_all
from lakehouse.demos.churn.domain import CHURN
from lakehouse.demos.churn.generator import Drift, GeneratorConfig, day_of, generate
from lakehouse.ml import model_registry
from lakehouse.ml.candidates import TrainingOptions, train_candidate
from lakehouse.monitoring.retraining import last_decision
from lakehouse.paths import DATA_ROOT_ENV, LakePaths
from lakehouse.serving.packaging import pinned_model

# Three times the session lake: the drift check needs 1,000 reference rows to tell drift from noise.
WORLD = {"customers": 900, "seed": 11, "bad_row_rate": 0.01, "bad_file_rate": 0.02}
DRIFT_DAY = 100  # the first day after the initial lake
NEW_DAYS = 21


def launch(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    request: dg.RunRequest,
    job_name: str,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Run what a request asks for, in this process, in the instance the sensors read (as the daemon would)."""
    return defs.resolve_job_def(request.job_name or job_name).execute_in_process(
        run_config=run_config if run_config is not None else request.run_config,
        instance=instance,
        tags=request.tags,
        raise_on_error=False,
    )


@pytest.mark.integration  # starts a real `bentoml serve`
@pytest.mark.slow
def test_drifted_batches_retrain_gate_promote_and_the_service_switches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = LakePaths(tmp_path / "data")
    monkeypatch.setenv(DATA_ROOT_ENV, str(paths.root))
    monkeypatch.setenv("DAGSTER_HOME", str(paths.root / "dagster"))
    generate(paths.landing, GeneratorConfig(**WORLD, days=DRIFT_DAY))
    assert set(failed_steps(materialize_all(paths))) <= GATE_STEP
    defs = build_definitions(str(paths.root))
    # The champion: a quick, untuned model an operator promoted by hand; a tuned retraining should beat it.
    weak = train_candidate(paths, CHURN, TrainingOptions(tune=False, params={"num_leaves": 3, "num_boost_round": 8}))
    model_registry.promote(paths, CHURN.name, weak["tag"], "test: a quick first model", action="manual")

    with dg.instance_for_test() as instance, bentoml_serve(paths) as service:
        assert post_json(service, "/model_info", {})[1]["model_version"] == weak["tag"]

        # 1. Three weeks in which usage halves everywhere land in the landing folders.
        drifts = tuple(
            Drift("usage_drop", DRIFT_DAY, region=r, magnitude=0.6) for r in ("north", "south", "east", "west")
        )
        generate(paths.landing, GeneratorConfig(**WORLD, days=DRIFT_DAY + NEW_DAYS, drifts=drifts, first_day=DRIFT_DAY))
        first_new_day = GeneratorConfig().start + timedelta(days=DRIFT_DAY)
        new_files = [f for f in paths.landing.glob("*/*.*") if day_of(f) >= first_new_day]
        landing = sensor_tick(paths, instance, "churn_landing_sensor", defs=defs)
        assert len(landing.run_requests) == len(new_files) > 0
        by_job: dict[str, list[dg.RunRequest]] = defaultdict(list)
        for request in landing.run_requests:
            by_job[request.job_name].append(request)
        for job_name, requests in by_job.items():  # one run per source with all its files: the same work, batched
            [op] = requests[0].run_config["ops"]
            files = [f for r in requests for f in r.run_config["ops"][op]["config"]["files"]]
            result = launch(defs, instance, requests[0], job_name, {"ops": {op: {"config": {"files": files}}}})
            assert result.success, job_name
        assert sensor_tick(paths, instance, "churn_landing_sensor", landing.cursor, defs=defs).run_requests == []

        # 2. The publish sensor sees the new features: the online store is refreshed and the drift check fails.
        monitoring = sensor_tick(paths, instance, "churn_publish_sensor", defs=defs)
        [request] = monitoring.run_requests
        result = launch(defs, instance, request, "churn_publish_job")
        [drift] = result.asset_materializations_for_node("churn__feature_drift")
        assert drift.metadata["status"].value == "failed", drift.metadata["reason"].value
        assert [c for c, _ in failed_checks(result)] == ["churn/feature_drift:drift_check"]

        # 3. The retraining sensor fires for the drift failure; the gate promotes the challenger.
        retraining = sensor_tick(paths, instance, "churn_retraining_sensor", defs=defs)
        [request] = retraining.run_requests
        assert request.tags["lakehouse/retrain_trigger"] == "drift_check"
        assert last_decision(paths, CHURN)["trigger"] == "drift_check"
        result = launch(defs, instance, request, "churn_retrain_job")
        assert result.success
        new = model_registry.champion(paths, CHURN.name)
        assert new != weak["tag"], "the gate refused the retrained model"

        # 4. The running service answers with the new champion, which also has its bento.
        status, body = post_json(service, "/predict_ids", {"customer_ids": [1, 2, 3]})
        assert status == 200 and {p.get("model_version", new) for p in body["predictions"]} == {new}
        assert post_json(service, "/model_info", {})[1]["model_version"] == new
        assert pinned_model(paths, CHURN, new.split(":")[-1]) == new
        # No second request during the cooldown, even though the check result is unchanged.
        again = sensor_tick(paths, instance, "churn_retraining_sensor", defs=defs)
        assert again.run_requests == []
