"""The landing sensor: one run request per new landing file, keyed by content hash."""

from __future__ import annotations

import shutil

import dagster as dg
import polars as pl
from conftest import sensor_tick

from assets.definitions import build_definitions
from lakehouse.demos.churn.domain import CHURN
from lakehouse.lake.ingestion import ingest_source
from lakehouse.paths import LakePaths

HEADER = "payment_id,customer_id,charged_at,amount,failed\n"


def land(paths, name: str, body: str) -> None:
    folder = paths.landing / "payments"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(HEADER + body)


def tick(paths, instance, cursor=None):
    return sensor_tick(paths, instance, "churn_landing_sensor", cursor)


def test_each_new_file_gets_one_run_request_for_its_source_job(paths):
    land(paths, "payments_2025-01-01.csv", "P1,1,2025-01-01 10:00:00,9.99,false\n")
    land(paths, "payments_2025-01-02.csv", "P2,1,2025-01-02 10:00:00,9.99,false\n")
    with dg.instance_for_test() as instance:
        result = tick(paths, instance)
    assert len(result.run_requests) == 2
    request = result.run_requests[0]
    assert request.job_name == "churn_payments_landing_job"
    assert request.run_key.startswith("payments:") and len(request.run_key) == len("payments:") + 64
    [(op, config)] = request.run_config["ops"].items()
    assert op == "churn__payments_bronze"
    assert config["config"]["files"] == [str(paths.landing / "payments" / "payments_2025-01-01.csv")]


def test_the_same_file_on_the_next_tick_gets_the_same_run_key_so_dagster_runs_it_once(paths):
    land(paths, "payments_2025-01-01.csv", "P1,1,2025-01-01 10:00:00,9.99,false\n")
    with dg.instance_for_test() as instance:
        first = tick(paths, instance)
        second = tick(paths, instance, cursor=first.cursor)
    assert [r.run_key for r in first.run_requests] == [r.run_key for r in second.run_requests]


def test_ingested_files_and_copies_of_them_request_nothing(paths):
    land(paths, "payments_2025-01-01.csv", "P1,1,2025-01-01 10:00:00,9.99,false\n")
    ingest_source(paths, CHURN.source("payments"))
    shutil.copy(paths.landing / "payments" / "payments_2025-01-01.csv", paths.landing / "payments" / "copy.csv")
    with dg.instance_for_test() as instance:
        result = tick(paths, instance)
    assert not result.run_requests
    assert "no new landing files (2 already ingested or rejected)" in result.skip_message


def test_a_sensor_run_request_executes_its_job_on_just_that_file(lake, tmp_path):
    """The requested job ingests the one file into silver; features and the online store follow once per burst."""
    copy = LakePaths(tmp_path / "data")
    shutil.copytree(lake.root, copy.root)
    land(copy, "payments_extra.csv", "P999999,1,2025-04-10 10:00:00,9.99,true\n")
    defs = build_definitions(str(copy.root))
    with dg.instance_for_test() as instance:
        [request] = tick(copy, instance).run_requests
        result = defs.resolve_job_def(request.job_name).execute_in_process(
            run_config=request.run_config, instance=instance
        )
        # With no landing run left, the publish sensor asks once for the online store and monitoring.
        publish = sensor_tick(copy, instance, "churn_publish_sensor", defs=defs)
        [publish_request] = publish.run_requests
        again = sensor_tick(copy, instance, "churn_publish_sensor", publish.cursor, defs=defs)
    assert result.success
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert {"payments_bronze", "payments_validated", "payments_silver"} <= materialized
    assert "usage_bronze" not in materialized and "training_set" not in materialized
    # The publish job's, once per burst:
    assert not {"customer_billing_features", "feast_registry", "online_features"} & materialized
    assert publish_request.tags["lakehouse/trigger"].startswith("silver:") and again.run_requests == []
    assert "P999999" in pl.read_parquet(copy.silver("payments"))["payment_id"].to_list()


def test_a_backlog_of_several_sources_is_requested_with_sources_taking_turns(paths):
    """Runs of different sources can go side by side (pools); each source keeps its file order."""
    land(paths, "payments_2025-01-01.csv", "P1,1,2025-01-01 10:00:00,9.99,false\n")
    land(paths, "payments_2025-01-02.csv", "P2,1,2025-01-02 10:00:00,9.99,false\n")
    (paths.landing / "tickets").mkdir(parents=True, exist_ok=True)
    (paths.landing / "tickets" / "tickets_2025-01-01.csv").write_text(
        "ticket_id,customer_id,opened_at,category,resolved_at,updated_at\n"
        "T1,1,2025-01-01 10:00:00,billing,,2025-01-01 10:00:00\n"
    )
    with dg.instance_for_test() as instance:
        result = tick(paths, instance)
    assert [r.tags["lakehouse/file"] for r in result.run_requests] == [
        "payments_2025-01-01.csv",
        "tickets_2025-01-01.csv",
        "payments_2025-01-02.csv",
    ]
