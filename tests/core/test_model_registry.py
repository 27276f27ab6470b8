"""The model registry and `lakehouse models`: integrity, champion history, experiments, CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pytest

from lakehouse.ml import model_registry
from lakehouse.paths import LakePaths
from lakehouse_cli.models import add_models_commands


@pytest.fixture(autouse=True)
def _bentoml_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # model_registry.bentoml_home exports BENTOML_HOME; registering it here makes monkeypatch restore it afterwards.
    monkeypatch.delenv("BENTOML_HOME", raising=False)
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")


@pytest.fixture(scope="module")
def model_text() -> str:
    """A real LightGBM model on tiny random data, deterministic."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int)
    params = {
        "objective": "binary",
        "num_leaves": 4,
        "min_data_in_leaf": 5,
        "verbose": -1,
        "deterministic": True,
        "num_threads": 1,
        "seed": 0,
    }
    booster = lgb.train(params, lgb.Dataset(x, y, feature_name=["a", "b", "c"]), num_boost_round=5)
    return booster.model_to_string()


def metadata(auc: float) -> dict:
    return {
        "metrics": {"test_roc_auc": auc},
        "params": {"num_leaves": 4},
        "threshold": 0.42,
        "feature_service": "churn_v1",
        "features": ["a", "b", "c"],
        "categories": {"plan": ["basic", "pro"]},
        "schema_hash": "abc123",
        "data_versions": {"training_set": "2025-01-01"},
    }


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="lakehouse")
    add_models_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["models", *argv])
    return args.func(args)


def test_bentoml_home_is_under_the_data_root(paths: LakePaths, model_text: str) -> None:
    import os

    tag = model_registry.save_model(paths, "churn", model_text, metadata(0.8))
    assert model_registry.bentoml_home(paths) == paths.root / "bentoml"
    assert os.environ["BENTOML_HOME"] == str(paths.root / "bentoml")
    name, version = tag.split(":")
    assert name == "churn_model"
    assert (paths.root / "bentoml" / "models" / name / version / "model.txt").read_text() == model_text


def test_save_then_load_returns_the_same_text_and_metadata(paths: LakePaths, model_text: str) -> None:
    tag = model_registry.save_model(paths, "churn", model_text, metadata(0.8), labels={"stage": "candidate"})
    text, meta = model_registry.load_model_text(paths, tag)
    assert text == model_text
    assert meta.items() >= metadata(0.8).items()
    assert meta["model_sha256"] == model_registry._sha256(model_text.encode())
    assert meta["library_versions"]["lightgbm"] == lgb.__version__
    assert "code_version" in meta
    # The loaded text is a working model, and a bare version finds it too.
    booster = lgb.Booster(model_str=model_registry.load_model_text(paths, tag.split(":")[1])[0])
    assert len(booster.predict(np.zeros((1, 3)))) == 1


def test_tampered_model_file_is_refused(paths: LakePaths, model_text: str) -> None:
    tag = model_registry.save_model(paths, "churn", model_text, metadata(0.8))
    model_file = Path(model_registry.show_model(paths, tag)["path"]) / "model.txt"
    model_file.write_text(model_text.replace("num_leaves=4", "num_leaves=5", 1))
    with pytest.raises(model_registry.ModelIntegrityError, match="SHA-256") as error:
        model_registry.load_model_text(paths, tag)
    assert model_registry._sha256(model_file.read_bytes()) in str(error.value)


def test_a_domain_model_is_found_by_prefix_and_only_in_its_domain(paths: LakePaths, model_text: str) -> None:
    churn = model_registry.save_model(paths, "churn", model_text, metadata(0.8))
    fraud = model_registry.save_model(paths, "fraud", model_text, metadata(0.8))
    tag, text, meta = model_registry.load_domain_model(paths, "churn", churn.split(":")[1][:6])
    assert (tag, text, meta["model_sha256"]) == (churn, model_text, model_registry._sha256(model_text.encode()))
    with pytest.raises(model_registry.RegistryError, match="a model of 'fraud', not of 'churn'"):
        model_registry.load_domain_model(paths, "churn", fraud)


def test_list_models_newest_first_with_the_champion_marked(paths: LakePaths, model_text: str) -> None:
    first = model_registry.save_model(paths, "churn", model_text, metadata(0.7))
    second = model_registry.save_model(paths, "churn", model_text, metadata(0.8))
    model_registry.promote(paths, "churn", first, "first model")
    rows = model_registry.list_models(paths)
    assert [r["tag"] for r in rows] == [second, first]
    assert [r["champion"] for r in rows] == [False, True]
    assert rows[1]["status"] == "champion" and rows[0]["status"] == "candidate"
    assert rows[1]["test_roc_auc"] == 0.7 and rows[1]["threshold"] == 0.42 and rows[1]["domain"] == "churn"
    assert model_registry.list_models(paths, domain="other") == []


def test_promote_and_rollback_history(paths: LakePaths, model_text: str) -> None:
    a = model_registry.save_model(paths, "churn", model_text, metadata(0.7))
    b = model_registry.save_model(paths, "churn", model_text, metadata(0.8))
    assert model_registry.champion(paths, "churn") is None
    model_registry.promote(paths, "churn", a, "first model")
    model_registry.promote(paths, "churn", b, "better test AUC")
    assert model_registry.champion(paths, "churn") == b
    assert model_registry.rollback(paths, "churn", "b misbehaves") == a
    assert model_registry.champion(paths, "churn") == a
    with pytest.raises(model_registry.RegistryError, match="nothing to roll back"):
        model_registry.rollback(paths, "churn", "again")
    history = model_registry.champion_history(paths, "churn")
    assert [(e["tag"], e["action"], e["reason"]) for e in history] == [
        (a, "promote", "first model"),
        (b, "promote", "better test AUC"),
        (a, "rollback", "b misbehaves"),
    ]
    assert all(e["at"] for e in history)
    stored = json.loads((paths.root / "registry" / "churn.json").read_text())
    assert stored["champion"] == a
    assert [r["status"] for r in model_registry.list_models(paths)] == ["retired", "champion"]


def test_promoting_an_unknown_tag_is_refused(paths: LakePaths, model_text: str) -> None:
    model_registry.save_model(paths, "churn", model_text, metadata(0.7))
    with pytest.raises(model_registry.RegistryError, match="no model"):
        model_registry.promote(paths, "churn", "churn_model:doesnotexist", "typo", action="manual")
    with pytest.raises(model_registry.RegistryError, match="no model"):
        model_registry.promote(paths, "churn", "zzzz", "typo", action="manual")
    assert model_registry.champion_history(paths, "churn") == []


def test_training_runs_round_trip(paths: LakePaths) -> None:
    assert model_registry.training_runs(paths).is_empty()
    model_registry.record_training_run(
        paths,
        {
            "run_id": "r1",
            "domain": "churn",
            "model_tag": "churn_model:abc",
            "params": {"num_leaves": 31},
            "metrics": {"test_roc_auc": 0.8},
            "data_versions": {"training_set": "v1"},
            "decision": "promoted",
            "reasons": ["beats champion"],
        },
    )
    model_registry.record_training_run(
        paths,
        {
            "run_id": "r2",
            "domain": "churn",
            "model_tag": None,
            "params": {},
            "metrics": {"test_roc_auc": 0.5},
            "decision": "rejected",
            "reasons": ["below minimum AUC", "schema changed"],
        },
    )
    runs = model_registry.training_runs(paths, domain="churn")
    assert runs["run_id"].to_list() == ["r1", "r2"]
    assert runs["model_tag"].to_list() == ["churn_model:abc", None]
    assert json.loads(runs["params"][0]) == {"num_leaves": 31}
    assert json.loads(runs["metrics"][1]) == {"test_roc_auc": 0.5}
    assert runs["reasons"].to_list() == [["beats champion"], ["below minimum AUC", "schema changed"]]
    assert model_registry.training_runs(paths, domain="other").is_empty()
    glob = paths.root / "lake" / "experiments" / "*.parquet"
    assert duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone() == (2,)


def test_cli_list_show_promote_rollback(paths: LakePaths, model_text: str, capsys: pytest.CaptureFixture) -> None:
    a = model_registry.save_model(paths, "churn", model_text, metadata(0.7))
    b = model_registry.save_model(paths, "churn", model_text, metadata(0.8))

    assert run_cli("promote", a.split(":")[1], "--reason", "first model") == 0
    assert a in capsys.readouterr().out
    assert run_cli("promote", b, "--reason", "better") == 0
    capsys.readouterr()

    assert run_cli("list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:2] == ["VERSION", "DOMAIN"]
    assert table[1].startswith(b) and "*" in table[1] and "0.8000" in table[1] and "champion" in table[1]
    assert table[2].startswith(a) and "retired" in table[2]

    assert run_cli("list", "--json", "--domain", "churn") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["tag"], r["domain"], r["champion"]) for r in rows] == [(b, "churn", True), (a, "churn", False)]

    assert run_cli("show", b, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["integrity"] == "ok" and shown["metadata"]["threshold"] == 0.42
    assert [e["reason"] for e in shown["champion_history"]] == ["better"]
    assert run_cli("show", a) == 0
    assert "integrity:" in capsys.readouterr().out

    assert run_cli("rollback", "--reason", "b misbehaves") == 0
    assert a in capsys.readouterr().out
    assert model_registry.champion(paths, "churn") == a
    assert model_registry.champion_history(paths, "churn")[-1]["action"] == "rollback"
    assert model_registry.champion_history(paths, "churn")[0]["action"] == "manual"


def test_cli_errors_exit_2(paths: LakePaths, model_text: str, capsys: pytest.CaptureFixture) -> None:
    assert run_cli("rollback") == 2
    assert "nothing to roll back" in capsys.readouterr().err
    assert run_cli("list") == 0
    assert "no models" in capsys.readouterr().out

    tag = model_registry.save_model(paths, "churn", model_text, metadata(0.7))
    assert run_cli("show", "nosuchversion") == 2
    assert "no model" in capsys.readouterr().err
    assert run_cli("promote", "churn_model:nosuchversion", "--reason", "typo") == 2
    assert "no model" in capsys.readouterr().err

    assert run_cli("promote", tag, "--reason", "only model") == 0
    assert run_cli("rollback", "--domain", "churn") == 2
    assert "nothing to roll back" in capsys.readouterr().err

    (Path(model_registry.show_model(paths, tag)["path"]) / "model.txt").write_text("tampered")
    assert run_cli("show", tag) == 2
    assert "SHA-256" in capsys.readouterr().err
