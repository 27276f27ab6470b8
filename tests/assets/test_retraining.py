"""Retraining: the decision rules, and the monitoring and retraining sensors against a real Dagster instance."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from conftest import sensor_tick

from assets.definitions import build_definitions
from lakehouse.declarations.domain import RetrainPolicy
from lakehouse.demos.churn.domain import CHURN
from lakehouse.ml.candidates import latest_training
from lakehouse.monitoring.retraining import Decision, FailedCheck, RetrainState, decide, last_decision
from lakehouse.paths import LakePaths

POLICY = RetrainPolicy(min_new_labels=100, min_new_label_share=0.1, cooldown_seconds=600)


def state(**changes) -> RetrainState:
    base = dict(
        last_trained="churn_model:abc",
        new_labels=30,
        trained_rows=2000,
        failed_checks=[],
        in_flight=[],
        seconds_since_last_request=None,
    )
    return RetrainState(**{**base, **changes})


def test_decisions_fire_on_failed_checks_and_new_data_within_guardrails() -> None:
    drift = FailedCheck("drift_check", 41, "2 of 21 features drifted")
    fired = decide(state(failed_checks=[drift]), POLICY)
    assert fired == Decision(
        True, "drift_check failed (evaluation 41): 2 of 21 features drifted", "drift_check", "retrain:drift_check:41"
    )
    # The same evaluation gives the same run key: Dagster drops the duplicate request.
    assert decide(state(failed_checks=[drift]), POLICY).run_key == fired.run_key

    busy = decide(state(failed_checks=[drift], in_flight=["1234abcd"]), POLICY)
    assert not busy.fire and "in flight (1234abcd)" in busy.reason
    cooling = decide(state(failed_checks=[drift], seconds_since_last_request=60), POLICY)
    assert not cooling.fire and cooling.reason.startswith("cooldown: ") and "600s" in cooling.reason

    quiet = decide(state(), POLICY)
    assert not quiet.fire and "30 new label events" in quiet.reason and "need 200" in quiet.reason
    # Enough new evidence: 10% of the 2,000 trained rows (the share wins over the 100-row floor).
    assert not decide(state(new_labels=199), POLICY).fire
    data = decide(state(new_labels=200), POLICY)
    assert data.fire and data.trigger == "new_data" and data.run_key.startswith("retrain:new_data:")
    first = decide(state(last_trained=None, trained_rows=0), POLICY)
    assert first.fire and first.trigger == "first_model"
    again = decide(state(failed_checks=[drift], last_trigger="drift_check"), POLICY)
    assert not again.fire and "still fails after the retraining it triggered" in again.reason
    assert decide(state(failed_checks=[drift], last_trigger="drift_check", new_labels=200), POLICY).fire
    same_inputs = decide(state(failed_checks=[drift], new_labels=0), POLICY)
    assert not same_inputs.fire and "retraining would reproduce it" in same_inputs.reason
    ignored = decide(state(failed_checks=[FailedCheck("skew_check", 5)]), POLICY)
    assert not ignored.fire  # skew is reported, but retraining does not fix a serving bug


@pytest.fixture
def trained(lake: LakePaths, tmp_path: Path) -> LakePaths:
    """A copy of the session lake with a trained model and one published batch it has not seen."""
    from lakehouse.lake.ingestion import ingest_source
    from lakehouse.lake.validation import validate_new_batches

    copy = LakePaths(tmp_path / "data")
    shutil.copytree(lake.root, copy.root)
    assert latest_training(copy, CHURN) is not None
    folder = copy.landing / "payments"
    (folder / "payments_new.csv").write_text(
        "payment_id,customer_id,charged_at,amount,failed\nPNEW1,1,2025-04-01 10:00:00,9.99,false\n"
    )
    payments = CHURN.source("payments")
    assert ingest_source(copy, payments, [str(folder / "payments_new.csv")]).ingested
    validate_new_batches(copy, payments, CHURN.max_quarantine_rate, CHURN.min_held_rows)
    return copy


def forget_newest_labels(paths: LakePaths) -> int:
    """Drop the newest as-of date from the training set: its label events become new evidence; return their count."""
    import polars as pl

    from lakehouse.ml.training_set import new_label_events

    frame = pl.read_parquet(paths.training_set(CHURN.name))
    frame.filter(pl.col("event_timestamp") < frame["event_timestamp"].max()).write_parquet(
        paths.training_set(CHURN.name)
    )
    return new_label_events(paths, CHURN)


def record_check(instance: dg.DagsterInstance, key: dg.AssetKey, check: str, passed: bool) -> None:
    """A real check evaluation in the instance, as the monitoring asset would leave it."""

    @dg.asset(key=key, check_specs=[dg.AssetCheckSpec(check, asset=key)])
    def stand_in():
        return dg.MaterializeResult(
            check_results=[dg.AssetCheckResult(check_name=check, passed=passed, description="test evaluation")]
        )

    assert dg.materialize([stand_in], instance=instance).success


def test_retraining_sensor_fires_once_for_a_drift_failure_and_not_during_the_cooldown(trained: LakePaths) -> None:
    drift_key = dg.AssetKey(["churn", "feature_drift"])
    with dg.instance_for_test() as instance:
        quiet = sensor_tick(trained, instance, "churn_retraining_sensor")
        # A new published batch brings no new label event: nothing to learn from yet.
        assert quiet.run_requests == [] and "0 new label events" in quiet.skip_message
        assert last_decision(trained, CHURN)["fire"] is False

        record_check(instance, drift_key, "drift_check", passed=False)
        # Retraining on the rows the model was trained on would give the same model: no request.
        same = sensor_tick(trained, instance, "churn_retraining_sensor")
        assert same.run_requests == [] and "retraining would reproduce it" in same.skip_message

        new_labels = forget_newest_labels(trained)  # as if those labels arrived after the training
        assert new_labels > 0
        result = sensor_tick(trained, instance, "churn_retraining_sensor")
        [request] = result.run_requests
        assert request.job_name is None or request.job_name == "churn_retrain_job"
        assert request.run_key.startswith("retrain:drift_check:")
        assert request.tags["lakehouse/retrain_trigger"] == "drift_check"
        assert request.tags["dagster/priority"] == "1"  # ahead of queued landing runs
        # A short search from the champion's hyperparameters, not the full one.
        assert request.run_config == {
            "ops": {
                "churn__model_candidate": {"config": {"trials": CHURN.retraining.tuning_trials, "warm_start": True}}
            }
        }
        assert last_decision(trained, CHURN)["trigger"] == "drift_check"

        # The daemon launches the requested run: while it is in flight, and then during the cooldown,
        # even a new drift failure does not fire again.
        job = build_definitions(str(trained.root)).resolve_job_def("churn_retrain_job")
        run = instance.create_run_for_job(job, run_config={}, tags=request.tags)
        assert "in flight" in sensor_tick(trained, instance, "churn_retraining_sensor").skip_message
        instance.report_run_failed(run)  # finished (how does not matter to the guardrail)
        record_check(instance, drift_key, "drift_check", passed=False)
        cooling = sensor_tick(trained, instance, "churn_retraining_sensor")
        assert cooling.run_requests == [] and cooling.skip_message.startswith("cooldown: ")


def test_a_queued_monitoring_run_does_not_hide_a_failed_drift_check(trained: LakePaths) -> None:
    """The newest check record of a queued run is a placeholder without a result; the failure before it counts."""
    drift_key = dg.AssetKey(["churn", "feature_drift"])
    forget_newest_labels(trained)
    with dg.instance_for_test() as instance:
        record_check(instance, drift_key, "drift_check", passed=False)
        monitoring = build_definitions(str(trained.root)).resolve_job_def("churn_publish_job")
        instance.create_run_for_job(monitoring, run_config={})  # queued: plans drift_check, evaluates nothing yet
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(drift_key, "drift_check"), limit=5
        )
        assert history[0].event is None or history[0].event.asset_check_evaluation is None  # the placeholder
        [request] = sensor_tick(trained, instance, "churn_retraining_sensor").run_requests
        assert request.tags["lakehouse/retrain_trigger"] == "drift_check"


def test_publish_sensor_runs_once_per_burst_of_new_silver_data(trained: LakePaths) -> None:
    usage = dg.AssetKey(["churn", "usage_silver"])
    payments = dg.AssetKey(["churn", "payments_silver"])
    with dg.instance_for_test() as instance:
        assert "never been materialized" in sensor_tick(trained, instance, "churn_publish_sensor").skip_message
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=usage))
        first = sensor_tick(trained, instance, "churn_publish_sensor")
        [request] = first.run_requests
        assert request.run_key.startswith("publish:")
        again = sensor_tick(trained, instance, "churn_publish_sensor", cursor=first.cursor)
        assert again.run_requests == [] and "no silver materialization since" in again.skip_message
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=payments))  # any source counts
        # While landing runs are queued, publishing waits for the burst to end (once, not between every file).
        defs = build_definitions(str(trained.root))
        queued = instance.create_run_for_job(defs.resolve_job_def("churn_usage_landing_job"), run_config={})
        waiting = sensor_tick(trained, instance, "churn_publish_sensor", cursor=first.cursor)
        assert waiting.run_requests == [] and "1 landing run(s) queued or running" in waiting.skip_message
        instance.report_run_failed(queued)
        assert len(sensor_tick(trained, instance, "churn_publish_sensor", cursor=first.cursor).run_requests) == 1
