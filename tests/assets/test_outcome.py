"""Headless runs sorted for the exit code: failed steps and data checks break a run, monitoring checks are findings."""

from __future__ import annotations

import dagster as dg

from assets.headless import outcome


def test_a_failed_monitoring_check_is_a_finding_and_a_failed_data_check_an_error() -> None:
    @dg.asset(
        key=["churn", "feature_drift"],
        check_specs=[dg.AssetCheckSpec("drift_check", asset=dg.AssetKey(["churn", "feature_drift"]))],
    )
    def drift():
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="drift_check", passed=False)])

    @dg.asset(
        key=["churn", "usage_validated"],
        check_specs=[dg.AssetCheckSpec("quarantine_rate_check", asset=dg.AssetKey(["churn", "usage_validated"]))],
    )
    def validated():
        return dg.MaterializeResult(
            check_results=[dg.AssetCheckResult(check_name="quarantine_rate_check", passed=False)]
        )

    @dg.asset(key=["churn", "broken"])
    def broken():
        raise RuntimeError("a bug")

    result = dg.materialize([drift, validated, broken], raise_on_error=False)
    found = outcome([result], ["churn"])
    assert found.findings == ["churn/feature_drift:drift_check"]
    assert found.errors == ["churn/usage_validated:quarantine_rate_check"]
    assert found.steps == ["churn__broken"]
    assert outcome([dg.materialize([drift])], ["churn"]).errors == []  # a finding alone breaks nothing
