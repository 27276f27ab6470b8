"""End to end: the whole asset graph on small generated data in a temporary data root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl

from assets.dagster_home import ensure_dagster_home
from assets.definitions import build_definitions
from assets.headless import failed_steps, materialize_all
from assets.keys import DomainKeys
from assets.pools import LAKE_POOL
from lakehouse.demos.churn.domain import CHURN
from lakehouse.lake.ingestion import manifest, rejected_files
from lakehouse.lake.validation import validation_reports
from lakehouse.paths import DATA_ROOT_ENV, REPO_ROOT, LakePaths
from lakehouse_cli.summary import lake_summary
from tests.conftest import GATE_STEP

VENV_BIN = Path(sys.executable).parent


def test_every_layer_accounts_for_every_row(lake):
    summary = lake_summary(lake, CHURN)
    for name, s in summary["sources"].items():
        assert s["batches"] > 0, name
        assert s["bronze_rows"] == s["valid_rows"] + s["quarantined_rows"], name
        assert 0 < s["silver_rows"] <= s["valid_rows"], name
    assert sum(s["quarantined_rows"] for s in summary["sources"].values()) > 0  # the generator injected bad rows
    assert rejected_files(lake), "the generator injected malformed files"
    assert all(r["reason"] for r in rejected_files(lake))
    assert summary["training_rows"] == summary["label_events"] > 1000
    assert summary["feast"] == {
        "registry": f"file: {lake.feast / 'registry.db'}",
        "online_store": f"sqlite: {lake.feast / 'online_store.db'}",
    }


def test_quarantined_rows_keep_their_batch_and_reason(lake):
    quarantine = pl.read_parquet(str(lake.lake / "quarantine" / "usage" / "*.parquet"))
    assert quarantine.height > 0
    assert quarantine["_reason"].str.len_chars().min() > 0
    assert set(quarantine["_batch_id"]) <= {b["batch_id"] for b in manifest(lake, "usage")}


def test_every_feature_view_has_the_declared_columns(lake):
    for view in CHURN.feature_views:
        table = pl.read_parquet(lake.features(view.name))
        assert table.columns == ["customer_id", "event_timestamp", *(f.name for f in view.features)]
        assert table.select(pl.struct("customer_id", "event_timestamp").is_duplicated().any()).item() is False


def test_materializing_again_adds_no_duplicate_data(lake, tmp_path):
    before = lake_summary(lake, CHURN)
    with dg.instance_for_test() as instance:
        assert set(failed_steps(materialize_all(lake, instance))) <= GATE_STEP
    after = lake_summary(lake, CHURN)
    assert after["sources"] == before["sources"]
    assert after["features"] == before["features"] and after["training_rows"] == before["training_rows"]


def test_feast_cli_lists_the_projects_feature_views(lake):
    env = {**os.environ, DATA_ROOT_ENV: str(lake.root)}
    yaml = lake.feast / "feature_store.yaml"
    out = subprocess.run(
        [str(VENV_BIN / "feast"), "-c", "feature_repo", "-f", str(yaml), "feature-views", "list"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    for view in CHURN.feature_views:
        assert view.name in out.stdout


def test_online_lookup_returns_the_latest_offline_values(lake):
    from lakehouse.feature_store.feast_objects import feature_store, online_features

    usage = pl.read_parquet(lake.features("customer_usage"))
    latest = usage.sort("event_timestamp").group_by("customer_id").last().sort("customer_id").head(20)
    online = online_features(feature_store(lake), CHURN, latest["customer_id"].to_list())
    assert online["sessions_7d"] == latest["sessions_7d"].to_list()
    assert online["minutes_30d"] == latest["minutes_30d"].to_list()
    assert all(p is not None for p in online["plan"])


def test_a_held_batch_fails_the_blocking_check_and_stops_everything_downstream(lake, tmp_path):
    import shutil

    copy = LakePaths(tmp_path / "data")
    shutil.copytree(lake.root, copy.root)
    header = "payment_id,customer_id,charged_at,amount,failed\n"
    (copy.landing / "payments" / "payments_broken.csv").write_text(
        header + "".join(f"B{i},oops,2025-04-10 10:00:00,1.0,false\n" for i in range(20))
    )
    silver_before = (copy.silver("payments")).stat().st_mtime_ns
    with dg.instance_for_test() as instance:
        result = materialize_all(copy, instance)
    assert not result.success
    failed = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed
    ]
    assert [c.asset_check_key.name for c in failed] == ["quarantine_rate_check"]
    assert copy.silver("payments").stat().st_mtime_ns == silver_before  # silver was not rebuilt
    held = [r for r in validation_reports(copy, "payments") if r["status"] == "held"]
    assert [r["file"] for r in held] == ["payments_broken.csv"] and held[0]["rows_quarantined"] == 20


def test_the_feast_assets_say_where_the_registry_and_online_store_are(lake):
    with dg.DagsterInstance.from_config(str(lake.root / "dagster")) as instance:

        def metadata(name: str) -> dict:
            event = instance.get_latest_materialization_event(dg.AssetKey(["churn", name]))
            return {k: v.value for k, v in event.asset_materialization.metadata.items()}

        assert metadata("feast_registry")["registry"] == f"file: {lake.feast / 'registry.db'}"
        assert metadata("online_features")["online_store"] == f"sqlite: {lake.feast / 'online_store.db'}"


def test_only_runs_that_write_different_files_may_go_side_by_side(tmp_path):
    """Pools (run granularity, limit 1): landing runs of different sources are disjoint, the rest share the lake."""
    defs = build_definitions()

    def pools(job: str) -> set[str]:
        return {node.definition.pool for node in defs.resolve_job_def(job).graph.nodes}

    landing = {s.name: pools(f"churn_{s.name}_landing_job") for s in CHURN.sources}
    assert all(len(p) == 1 for p in landing.values()) and len(set.union(*landing.values())) == len(CHURN.sources)
    assert pools("churn_publish_job") == pools("churn_retrain_job") == {LAKE_POOL}
    assert pools(DomainKeys.of(CHURN).all_job) == set.union(*landing.values(), {LAKE_POOL})
    with dg.DagsterInstance.from_config(str(ensure_dagster_home(LakePaths(tmp_path)))) as instance:
        config = instance.get_concurrency_config()  # the dagster.yaml a new data root gets
    assert config.run_queue_config.max_concurrent_runs == 2
    assert config.pool_config.pool_granularity.value == "run" and config.pool_config.default_pool_limit == 1


def test_the_duckdb_catalog_has_a_view_per_lake_table(lake):
    import duckdb

    with duckdb.connect(str(lake.duckdb_file), read_only=True) as con:
        silver = con.execute("SELECT count(*) FROM churn.usage_silver").fetchall()[0][0]
        views = {
            r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = 'churn'").fetchall()
        }
    assert silver == pl.read_parquet(lake.silver("usage")).height
    assert {"usage_bronze", "usage_quarantine", "customer_usage_features"} <= views


def test_the_workspace_loads_in_dagster():
    out = subprocess.run(
        [str(VENV_BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "All code locations passed validation" in out.stderr + out.stdout
