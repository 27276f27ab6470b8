"""The bento: `bentoml build` pinned to the champion, served from the store; precomputed scores by lookup."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml
from bento_process import bentoml_serve, post_json

from assets.resources import LakehouseResource
from assets.serving import bento_asset
from lakehouse.demos.churn.domain import CHURN
from lakehouse.feature_store.feast_objects import feature_store
from lakehouse.ml import model_registry
from lakehouse.ml.candidates import TrainingOptions, latest_candidate, train_candidate
from lakehouse.paths import LakePaths
from lakehouse.serving.batch_scores import batch_score, publish_online
from lakehouse.serving.packaging import build_bento, pinned_model


@pytest.fixture(scope="module")
def packaged(lake: LakePaths, tmp_path_factory: pytest.TempPathFactory) -> tuple[LakePaths, dict]:
    """A copy of the session lake with a champion, batch-scored into the online store, and its bento built."""
    copy = LakePaths(tmp_path_factory.mktemp("bento") / "data")
    shutil.copytree(lake.root, copy.root)
    if model_registry.champion(copy, CHURN.name) is None:
        model_registry.promote(copy, CHURN.name, latest_candidate(copy, CHURN), "test", action="manual")
    batch_score(copy, CHURN)
    publish_online(feature_store(copy), CHURN, copy)
    return copy, build_bento(copy, CHURN, model_registry.champion(copy, CHURN.name))


def test_bento_is_pinned_to_the_champion_and_rebuilt_only_for_a_new_one(packaged: tuple[LakePaths, dict]) -> None:
    paths, bento = packaged
    champion = model_registry.champion(paths, CHURN.name)
    version = champion.split(":")[-1]
    assert bento["tag"] == f"churn_service:{version}" and not bento["reused"]
    info = yaml.safe_load((bento["path"] / "bento.yaml").read_text())
    assert info["args"] == {"model_tag": champion}
    assert [m["tag"] for m in info["services"][0]["models"]] == [champion]  # the class-scope reference
    assert (bento["path"] / "src" / "lakehouse" / "serving" / "scoring.py").exists()
    assert not (bento["path"] / "src" / "data").exists()  # code and the model reference only, no lake
    assert pinned_model(paths, CHURN, version) == champion
    again = build_bento(paths, CHURN, champion)
    assert again["reused"] and again["tag"] == bento["tag"]


def test_bento_asset_reports_the_bento(packaged: tuple[LakePaths, dict]) -> None:
    paths, bento = packaged
    result = dg.materialize(
        [bento_asset(CHURN)],
        resources={"lakehouse": LakehouseResource(data_root=str(paths.root))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    [mat] = result.asset_materializations_for_node("churn__bento")
    md = {k: v.value for k, v in mat.metadata.items()}
    assert md["bento"] == bento["tag"] and md["model"] == model_registry.champion(paths, CHURN.name)
    assert md["reused"] is True and md["size_bytes"] > 0


def test_bento_asset_without_champion_is_a_clear_failure(paths: LakePaths) -> None:
    with pytest.raises(dg.Failure, match="no churn champion to package"):
        dg.materialize(
            [bento_asset(CHURN)],
            resources={"lakehouse": LakehouseResource(data_root=str(paths.root))},
            instance=dg.DagsterInstance.ephemeral(),
        )


@pytest.mark.integration  # starts a real `bentoml serve`
def test_served_bento_keeps_its_model_while_the_repo_service_switches(packaged: tuple[LakePaths, dict]) -> None:
    """Two real `bentoml serve`s: the bento stays on its version, the repo service follows the champion."""
    paths, bento = packaged
    first = model_registry.champion(paths, CHURN.name)
    stored = pl.read_parquet(paths.batch_scores("churn"))
    ids = stored["customer_id"].head(3).to_list()
    with bentoml_serve(paths, bento["tag"]) as pinned, bentoml_serve(paths) as live:
        for base in (pinned, live):
            status, info = post_json(base, "/model_info", {})
            assert status == 200 and info["model_version"] == first
        status, body = post_json(live, "/precomputed", {"customer_ids": [*ids, 10**12]})
        assert status == 200, body
        by_id = {r["customer_id"]: r for r in stored.iter_rows(named=True)}
        for hit in body["predictions"][:3]:
            assert hit["score"] == by_id[hit["customer_id"]]["score"] and hit["by_current_model"] is True
        assert "no precomputed score" in body["predictions"][3]["error"]

        other = train_candidate(paths, CHURN, TrainingOptions(tune=False, params={"num_leaves": 5}))
        assert other["tag"] != first
        model_registry.promote(paths, CHURN.name, other["tag"], "test: a new champion", action="manual")
        _, pinned_info = post_json(pinned, "/model_info", {})
        _, live_info = post_json(live, "/model_info", {})
        assert pinned_info["model_version"] == first
        assert live_info["model_version"] == other["tag"]
        status, body = post_json(live, "/predict_ids", {"customer_ids": ids})
        assert status == 200 and {p["model_version"] for p in body["predictions"]} == {other["tag"]}
        _, body = post_json(live, "/precomputed", {"customer_ids": ids[:1]})
        assert body["predictions"][0]["by_current_model"] is False  # scored by the previous champion

        # The repo service answers with the retired champion on demand; a bento holds only its own model.
        status, body = post_json(live, "/predict_ids", {"customer_ids": ids, "model_version": first})
        assert status == 200 and {p["model_version"] for p in body["predictions"]} == {first}
        status, body = post_json(pinned, "/predict_ids", {"customer_ids": ids, "model_version": other["tag"]})
        assert status == 400 and f"serves only {first}" in str(body), body


def test_requirements_match_the_lock() -> None:
    """bentos/requirements.txt (what a bento installs) is uv.lock's export: `make lock` keeps them in step."""
    import subprocess
    import sys

    uv = Path(sys.executable).parent / "uv"
    exported = subprocess.run(
        [str(uv), "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    assert (Path(__file__).resolve().parents[2] / "bentos" / "requirements.txt").read_text() == exported


def test_each_domain_is_served_with_its_declared_arguments(tmp_path: Path) -> None:
    """The demo's own service needs no argument; the generic dataset service is told its dataset."""
    from dataclasses import replace

    from lakehouse.serving.packaging import bentofile, service_arguments

    dataset = replace(
        CHURN, name="shop", service="bentos.dataset_service:DatasetService", service_args={"dataset": "shop"}
    )
    assert service_arguments(CHURN) == []
    assert service_arguments(dataset) == ["--arg", "dataset=shop"]
    spec = yaml.safe_load(bentofile(dataset, tmp_path).read_text())
    assert spec["service"] == "bentos.dataset_service:DatasetService" and spec["labels"] == {"domain": "shop"}
    assert "datasets/*.yaml" in spec["include"]  # the bento carries the declaration it is told to serve
