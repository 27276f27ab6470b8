"""Bring your own dataset: a file nobody wrote Python for goes through the whole loop, beside another one."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from bento_process import bentoml_serve, post_json
from conftest import sensor_tick
from quirky_data import write_quirky_dataset

from assets.definitions import build_definitions
from lakehouse.declarations.datasets import DATASETS_ENV, DatasetSpecError, spec_from_dict
from lakehouse.domains import get_domain
from lakehouse.ml import model_registry
from lakehouse.monitoring.retraining import last_decision
from lakehouse.paths import DATA_ROOT_ENV, LakePaths
from lakehouse_cli.main import main

VALID = {
    "name": "shop",
    "entity": "customer_id",
    "timestamp": "event_time",
    "label": "is_fraud",
    "positive": "1",
    "features": {"amount": {"type": "float64"}, "channel": {"type": "string"}},
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "unknown setting 'colour'"),
        ({"entity": None}, "missing 'entity'"),
        ({"name": "My Shop"}, "must be lowercase letters"),
        ({"features": {"amount": {"type": "decimal"}}}, "type must be one of"),
        ({"features": {"amount": {"type": "float64", "colour": 1}}}, "unknown settings ['colour']"),
        ({"features": {"is_fraud": {"type": "float64"}}}, "label column 'is_fraud' is also listed as a feature"),
        ({"drop": ["amount"]}, "both dropped and a feature"),
        ({"labels": {"key": "id"}}, "labels must give 'key' (the join column)"),
        (
            {"labels": {"key": "event_time", "label": "is_fraud"}},
            "the timestamp and the labels key are the same column",
        ),
        ({"timestamp": "customer_id"}, "the entity and the timestamp are the same column"),
        ({"costs": {"false_positive": -1, "false_negative": 2}}, "costs must give non-negative numbers"),
        ({"drift": {"threshold": 0.2}}, "drift: unknown settings ['threshold']"),
        ({"features": {"amount": {"type": "float64"}, "score": {"type": "float64"}}}, "a name the lakehouse uses"),
    ],
)
def test_a_hand_edited_file_gets_a_clear_error(change: dict, message: str) -> None:
    with pytest.raises(DatasetSpecError, match="shop.yaml") as caught:
        spec_from_dict({**VALID, **change}, "datasets/shop.yaml")
    assert message in str(caught.value)


def land(paths: LakePaths, name: str, files: list[Path], sub: str = "") -> None:
    folder = paths.landing / name / sub
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copy(f, folder / f.name)


@pytest.mark.integration  # starts a real `bentoml serve`
@pytest.mark.slow
def test_two_user_datasets_run_serve_and_react_to_drift_without_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    paths = LakePaths(tmp_path / "data")
    monkeypatch.setenv(DATA_ROOT_ENV, str(paths.root))
    monkeypatch.setenv("DAGSTER_HOME", str(paths.root / "dagster"))
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path / "datasets"))
    # Two datasets with every quirk: inline float labels and int ids; separate late labels and string ids.
    cards = write_quirky_dataset(tmp_path / "raw_cards", rows=4000, seed=1, days=60)
    shops = write_quirky_dataset(
        tmp_path / "raw_shops", rows=3000, seed=2, days=60, separate_labels=True, string_ids=True
    )
    assert (
        main(
            [
                "dataset",
                "add",
                "cards",
                "--source",
                str(tmp_path / "raw_cards" / "events-*"),
                "--entity",
                cards["entity"],
                "--timestamp",
                cards["timestamp"],
                "--label",
                cards["label"],
                "--drop",
                *cards["drop"],
                "--costs",
                "1,20",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "dataset",
                "add",
                "shops",
                "--source",
                str(tmp_path / "raw_shops" / "events-*"),
                "--entity",
                shops["entity"],
                "--timestamp",
                shops["timestamp"],
                "--label",
                shops["label"],
                "--labels",
                str(tmp_path / "raw_shops" / "labels" / "*.csv"),
                "--labels-key",
                shops["key"],
                "--drop",
                *shops["drop"],
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "discount" in printed and "'%'" in printed and "bool" in printed  # what was inferred is shown
    assert sorted(p.name for p in (tmp_path / "datasets").iterdir()) == ["cards.yaml", "shops.yaml"]

    assert main(["run", "cards"]) == 0
    assert main(["run", "shops"]) == 0
    out = capsys.readouterr().out
    assert "hold-out ROC AUC" in out and "champion cards_model:" in out and "champion shops_model:" in out

    # Side by side, nothing shared: champions, Feast views, landing folders, models listed per dataset.
    cards_champion, shops_champion = model_registry.champion(paths, "cards"), model_registry.champion(paths, "shops")
    assert cards_champion.startswith("cards_model:") and shops_champion.startswith("shops_model:")
    from lakehouse.feature_store.feast_objects import feature_store

    views = {v.name for v in feature_store(paths).list_feature_views()}
    assert {"cards_features", "shops_features", "cards_scores", "shops_scores"} <= views
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {m["dataset"] for m in listed} == {"cards", "shops"}
    assert main(["status", "shops", "--json"]) == 0
    shop_status = json.loads(capsys.readouterr().out)
    assert shop_status["champion"]["model_version"] == shops_champion
    assert shop_status["data"]["sources"]["shops_labels"]["valid_rows"] > 0

    # Served through a real `bentoml serve`: by id through Feast, and by explicit features.
    training = pl.read_parquet(paths.training_set("shops"))
    known = training["customer_id"].tail(3).to_list()
    lakehouse_cli = str(Path(sys.executable).parent / "lakehouse")
    with bentoml_serve(
        paths, command=[lakehouse_cli, "serve", "shops"], extra_env={DATASETS_ENV: str(tmp_path / "datasets")}
    ) as base:
        status, body = post_json(base, "/predict_ids", {"customer_ids": known})
        assert status == 200, body
        assert [p["customer_id"] for p in body["predictions"]] == known
        assert all(0 <= p["score"] <= 1 and p["model_version"] == shops_champion for p in body["predictions"])
        status, info = post_json(base, "/model_info", {})
        row = {f: None for f in info["features"]} | {
            "amount": 120.5,
            "merchant_category": "Électronique",
            "currency": "EUR €",
            "discount": 40.0,
            "is_new_device": 1,
        }
        status, body = post_json(base, "/predict_features", {"rows": [row]})
        assert status == 200 and 0 <= body["predictions"][0]["score"] <= 1, body
        assert post_json(base, "/predict_ids", {"customer_ids": [1]})[0] == 400  # shops ids are strings

    # A drifted batch lands for cards: the sensors ingest it, the drift check fails, retraining is decided.
    drifted = write_quirky_dataset(tmp_path / "raw_drift", rows=2500, seed=3, drift=True, start="2024-03-01", days=20)
    land(paths, "cards", drifted["files"])
    defs = build_definitions(str(paths.root))
    with dg.instance_for_test() as instance:
        landing = sensor_tick(paths, instance, "cards_landing_sensor", defs=defs)
        assert len(landing.run_requests) == len(drifted["files"])
        assert (
            sensor_tick(paths, instance, "shops_landing_sensor", defs=defs).run_requests == []
        )  # its folder is untouched
        for request in landing.run_requests:
            result = defs.resolve_job_def(request.job_name).execute_in_process(
                run_config=request.run_config, instance=instance, tags=request.tags, raise_on_error=False
            )
            assert result.success
        [request] = sensor_tick(paths, instance, "cards_publish_sensor", defs=defs).run_requests
        result = defs.resolve_job_def("cards_publish_job").execute_in_process(instance=instance, raise_on_error=False)
        [drift] = result.asset_materializations_for_node("cards__feature_drift")
        assert drift.metadata["status"].value == "failed", drift.metadata["reason"].value
        assert "amount" in drift.metadata["drifted"].value
        retraining = sensor_tick(paths, instance, "cards_retraining_sensor", defs=defs)
        [request] = retraining.run_requests
        assert request.tags["lakehouse/retrain_trigger"] == "drift_check"
    decision = last_decision(paths, get_domain("cards"))
    assert decision["fire"] and decision["trigger"] == "drift_check"
    assert main(["status", "cards"]) == 0
    out = capsys.readouterr().out
    assert "drift" in out and "failed" in out and "fired: drift_check failed" in out
    assert last_decision(paths, get_domain("shops"))["trigger"] == "first_model"  # its own run; no drift seen
