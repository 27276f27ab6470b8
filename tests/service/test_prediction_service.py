"""PredictionService, the service's state and request logic, called directly: no BentoML service, no HTTP."""

from __future__ import annotations

import logging
import re
import shutil
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from feast.errors import FeatureServiceNotFoundException, FeatureViewNotFoundException

from lakehouse.demos.churn.domain import CHURN
from lakehouse.feature_store.feast_objects import feature_store
from lakehouse.ml import model_registry
from lakehouse.ml.candidates import TrainingOptions, train_candidate
from lakehouse.paths import LakePaths
from lakehouse.serving import prediction_service, scoring
from lakehouse.serving.batch_scores import batch_score, publish_online
from lakehouse.serving.prediction_log import read_prediction_log
from lakehouse.serving.prediction_service import InvalidRequest, NotFound, PredictionService, Unavailable
from tests.conftest import copy_with_champion

UNKNOWN_ID = 10**9


@pytest.fixture(scope="module")
def served(lake: LakePaths, tmp_path_factory: pytest.TempPathFactory) -> LakePaths:
    """A private copy of the session lake with a churn champion, batch-scored into the online store."""
    paths = copy_with_champion(lake, tmp_path_factory.mktemp("prediction_service"))
    batch_score(paths, CHURN)
    publish_online(feature_store(paths), CHURN, paths)
    return paths


@pytest.fixture(scope="module")
def champion(served: LakePaths) -> scoring.ChampionModel:
    return scoring.load_champion(served, CHURN.name)


@pytest.fixture(scope="module")
def other_tag(served: LakePaths, champion: scoring.ChampionModel) -> str:
    """A second registered churn model, never promoted."""
    other = train_candidate(served, CHURN, TrainingOptions(tune=False, params={"num_leaves": 7}))
    assert other["tag"] != champion.tag
    return other["tag"]


@pytest.fixture(scope="module")
def service(served: LakePaths):
    service = PredictionService(CHURN, served)
    yield service
    service.close()


@pytest.fixture(scope="module")
def known_ids(served: LakePaths, champion: scoring.ChampionModel) -> list[int]:
    """A few customers that do have online features."""
    rows = scoring.online_rows(feature_store(served), champion, CHURN.entity_key, list(range(1, 41)))
    ids = [i for i, row in zip(range(1, 41), rows) if any(v is not None for v in row.values())]
    assert len(ids) >= 5
    return ids[:5]


def full_row(champion: scoring.ChampionModel) -> dict:
    return {f: (champion.categories[f][0] if f in champion.categories else 1.0) for f in champion.features}


def test_predict_ids_scores_online_features_as_the_scoring_library_does(
    service: PredictionService, served: LakePaths, champion: scoring.ChampionModel, known_ids: list[int]
) -> None:
    ids = [*known_ids, UNKNOWN_ID]
    out = service.predict_ids(ids)
    assert out["model_version"] == champion.tag and out["threshold"] == champion.threshold
    rows = scoring.online_rows(feature_store(served), champion, CHURN.entity_key, known_ids)
    expected = scoring.score_rows(champion, CHURN.entity_key, known_ids, rows)
    *scored, unknown = out["predictions"]
    assert [p["customer_id"] for p in scored] == known_ids
    assert [p["score"] for p in scored] == [r["score"] for r in expected]
    assert [p["decision"] for p in scored] == [r["decision"] for r in expected]
    assert unknown == {"customer_id": UNKNOWN_ID, "error": "unknown entity: no online features"}
    # The session lake's features are from 2025: older than every view's ttl, so flagged stale.
    first = scored[0]
    assert first["stale"] is True and first["stale_features"] and first["feature_age_hours"] > 48
    assert first["features_as_of"].startswith("2025-") and isinstance(first["missing_features"], list)


def test_predict_features_scores_rows_and_names_what_does_not_fit(
    service: PredictionService, champion: scoring.ChampionModel
) -> None:
    row = full_row(champion)
    out = service.predict_features([row, {**row, "usage_trend": None}])
    assert out["model_version"] == champion.tag and out["threshold"] == champion.threshold
    want = scoring.score(champion, scoring.features_frame(champion, [row, {**row, "usage_trend": None}]))
    assert out["predictions"] == want
    dropped = champion.features[-1]
    bad = {k: v for k, v in row.items() if k != dropped}
    with pytest.raises(InvalidRequest, match="not_a_feature") as refused:
        service.predict_features([{**bad, "not_a_feature": 1}])
    assert dropped in str(refused.value)


def test_explain_gives_the_top_contributions_and_an_unknown_entity_is_not_found(
    service: PredictionService, champion: scoring.ChampionModel, known_ids: list[int]
) -> None:
    out = service.explain(known_ids[0], top=4)
    assert out["customer_id"] == known_ids[0] and out["model_version"] == champion.tag
    assert len(out["contributions"]) == 4 and "bias" in out and out["space"] == "log-odds"
    assert len(service.explain(known_ids[0])["contributions"]) == 5  # the default
    with pytest.raises(NotFound, match=f"unknown entity: no online features for customer_id {UNKNOWN_ID}"):
        service.explain(UNKNOWN_ID)


def test_model_info_describes_the_champion(service: PredictionService, champion: scoring.ChampionModel) -> None:
    info = service.model_info()
    assert info["dataset"] == "churn" and info["model_version"] == champion.tag
    assert info["threshold"] == champion.threshold and info["feature_service"] == champion.feature_service
    assert info["features"] == champion.features
    assert info["model_sha256"] == champion.metadata["model_sha256"]
    assert set(info) == {
        "dataset",
        "model_version",
        "threshold",
        "feature_service",
        "features",
        "test_metrics",
        "trained_at",
        "code_version",
        "model_sha256",
        "loaded_on_demand",
    }


def test_precomputed_answers_from_the_batch_scores(
    service: PredictionService, served: LakePaths, champion: scoring.ChampionModel
) -> None:
    stored = pl.read_parquet(served.batch_scores("churn"))
    ids = stored["customer_id"].head(3).to_list()
    out = service.precomputed([*ids, 10**12])
    assert out == {"model_version": champion.tag, "predictions": out["predictions"]}
    by_id = {r["customer_id"]: r for r in stored.iter_rows(named=True)}
    for hit in out["predictions"][:3]:
        assert hit["score"] == by_id[hit["customer_id"]]["score"] and hit["by_current_model"] is True
    assert out["predictions"][3] == {
        "customer_id": 10**12,
        "error": "no precomputed score: not active at the last batch scoring",
    }


def test_precomputed_without_batch_scores_is_unavailable(
    service: PredictionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(*args, **kwargs):
        raise FeatureViewNotFoundException("churn_scores")

    monkeypatch.setattr(prediction_service, "precomputed_scores", missing)
    with pytest.raises(Unavailable, match="no precomputed scores yet: materialize the churn/batch_scores asset"):
        service.precomputed([1])


def test_an_online_store_that_does_not_answer_makes_the_service_unready_and_lookups_unavailable(
    service: PredictionService,
    champion: scoring.ChampionModel,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert service.ready() is True

    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(scoring, "online_lookup", broken)
    monkeypatch.setattr(prediction_service, "precomputed_scores", broken)
    with caplog.at_level(logging.WARNING, logger=prediction_service.__name__):
        assert service.ready() is False
    assert "not ready: the online store did not answer (OperationalError: disk I/O error)" in caplog.text
    for call in (lambda: service.predict_ids([1]), lambda: service.explain(1), lambda: service.precomputed([1])):
        with pytest.raises(Unavailable, match=r"the online store did not answer .*; try again later"):
            call()
    # What needs no online store still answers.
    assert service.model_info()["model_version"] == champion.tag
    assert service.predict_features([full_row(champion)])["model_version"] == champion.tag


def test_a_registered_version_answers_on_demand(
    service: PredictionService, served: LakePaths, other_tag: str, champion: scoring.ChampionModel, known_ids: list[int]
) -> None:
    other = scoring.champion_model(*model_registry.load_domain_model(served, CHURN.name, other_tag))
    version = other_tag.partition(":")[2]
    out = service.predict_ids(known_ids, model_version=version[:8])  # a unique prefix will do
    rows = scoring.online_rows(feature_store(served), other, CHURN.entity_key, known_ids)
    assert out["model_version"] == other_tag and out["threshold"] == other.threshold
    assert [p["score"] for p in out["predictions"]] == [
        r["score"] for r in scoring.score_rows(other, CHURN.entity_key, known_ids, rows)
    ]
    assert service.explain(known_ids[0], model_version=other_tag)["model_version"] == other_tag
    row = full_row(other)
    assert service.predict_features([row], other_tag)["predictions"] == scoring.score(
        other, scoring.features_frame(other, [row])
    )
    assert service.model_info()["loaded_on_demand"] == [other_tag]
    assert service.model_for(version[:8]) is service.model_for(other_tag)  # loaded once
    # The champion, however named, is the champion.
    for name in (None, champion.tag, champion.tag.partition(":")[2]):
        assert service.model_for(name) is service.champions.current()


@pytest.mark.parametrize("version", ["nosuchversion", "churn_model:nosuchversion", "a:b:c", ":", "../../x"])
def test_an_unknown_version_is_not_found(service: PredictionService, known_ids: list[int], version: str) -> None:
    with pytest.raises(NotFound, match=re.escape(f"model_version {version!r}")):
        service.predict_ids(known_ids[:1], model_version=version)
    with pytest.raises(NotFound, match="model_version"):
        service.predict_features([{}], model_version=version)


def test_a_version_whose_feature_service_is_gone_answers_only_explicit_features(
    service: PredictionService, other_tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def gone(name, allow_cache=False):
        raise FeatureServiceNotFoundException(name, "lakehouse")

    monkeypatch.setattr(service.store, "get_feature_service", gone)
    other = service.model_for(other_tag, online=False)
    with pytest.raises(
        NotFound,
        match=f"reads feature service {other.feature_service}, which the feature store no "
        "longer has; use predict_features",
    ):
        service.predict_ids([1], model_version=other_tag)
    assert service.predict_features([full_row(other)], other_tag)["model_version"] == other_tag


def test_a_corrupt_version_is_unavailable_and_the_service_keeps_answering(
    served: LakePaths, other_tag: str, champion: scoring.ChampionModel
) -> None:
    version = other_tag.partition(":")[2]
    model_file = served.bentoml_home / "models" / f"{CHURN.name}_model" / version / model_registry.MODEL_FILE
    original = model_file.read_bytes()
    fresh = PredictionService(CHURN, served)  # nothing loaded on demand yet
    try:
        model_file.write_bytes(original + b"\n")
        with pytest.raises(Unavailable, match="SHA-256"):
            fresh.predict_features([full_row(champion)], other_tag)
        assert fresh.predict_features([full_row(champion)])["model_version"] == champion.tag
    finally:
        model_file.write_bytes(original)
        fresh.close()


def test_a_pinned_service_serves_only_its_model(
    served: LakePaths, other_tag: str, champion: scoring.ChampionModel
) -> None:
    pinned_model = scoring.champion_model(*model_registry.load_domain_model(served, CHURN.name, other_tag))
    pinned = PredictionService(CHURN, served, pinned=pinned_model)
    try:
        assert pinned.on_demand is None
        info = pinned.model_info()
        assert info["model_version"] == other_tag and info["loaded_on_demand"] == []
        assert pinned.predict_features([full_row(champion)])["model_version"] == other_tag
        assert pinned.model_for(other_tag.partition(":")[2]) is pinned_model
        with pytest.raises(InvalidRequest, match=f"this bento serves only {other_tag}, not model_version"):
            pinned.predict_ids([1], model_version=champion.tag)
    finally:
        pinned.close()


def test_every_prediction_is_logged(
    served: LakePaths, tmp_path: Path, known_ids: list[int], champion: scoring.ChampionModel
) -> None:
    """One record per id or row, one request id per call, features and their time; close() writes them."""
    private = LakePaths(tmp_path / "data")  # a data root of its own: the log holds only these predictions
    for part in ("bentoml", "registry", "feast"):
        shutil.copytree(served.root / part, private.root / part)
    assert model_registry.champion(private, CHURN.name) == champion.tag
    logged = PredictionService(CHURN, private)
    ids = [*known_ids[:3], UNKNOWN_ID]
    out = logged.predict_ids(ids)
    rows = [full_row(champion), {**full_row(champion), "usage_trend": None}]
    logged.predict_features(rows)
    with pytest.raises(InvalidRequest):
        logged.predict_features([{"bogus": 1}])  # refused before scoring: nothing to log
    logged.model_info()
    logged.close()
    log = read_prediction_log(private.prediction_log("churn"))
    assert dict(log.group_by("endpoint").len().rows()) == {"predict_ids": 4, "predict_features": 2}
    assert log["request_id"].n_unique() == 2 and (log["latency_ms"] > 0).all()
    assert (log["model_version"] == champion.tag).all()
    by_ids = log.filter(pl.col("endpoint") == "predict_ids").sort("row_index")
    assert by_ids["entity_id"].to_list() == [str(i) for i in ids]
    assert by_ids["score"].to_list() == [p.get("score") for p in out["predictions"]]
    assert by_ids["error"].to_list() == [None, None, None, "unknown entity: no online features"]
    assert by_ids["features_at"].null_count() == 1
    features = log.filter(pl.col("endpoint") == "predict_features").sort("row_index")
    assert features["entity_id"].null_count() == 2 and features["features_at"].null_count() == 2
    assert '"usage_trend": null' in features["features"][1]


def test_a_failure_to_log_never_fails_a_prediction(
    service: PredictionService, known_ids: list[int], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full(records):
        raise OSError("no space left on device")

    monkeypatch.setattr(service.prediction_log, "log", full)
    with caplog.at_level(logging.ERROR, logger=prediction_service.__name__):
        out = service.predict_ids(known_ids[:2])
    assert len(out["predictions"]) == 2
    assert "could not log 2 predictions of predict_ids" in caplog.text


def test_the_service_follows_the_champion_pointer(
    service: PredictionService,
    served: LakePaths,
    other_tag: str,
    champion: scoring.ChampionModel,
    known_ids: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A promotion is served from the next request on, without a new service; so is a rollback."""
    with caplog.at_level(logging.WARNING, logger=prediction_service.__name__):
        model_registry.promote(served, CHURN.name, other_tag, "test: another champion", action="manual")
        try:
            assert service.predict_ids(known_ids[:1])["model_version"] == other_tag
            assert service.model_info()["model_version"] == other_tag
        finally:
            model_registry.rollback(served, CHURN.name, "test: back")
        assert service.model_info()["model_version"] == champion.tag
    assert f"champion changed: now serving {other_tag} (was {champion.tag})" in caplog.text
    assert f"champion changed: now serving {champion.tag} (was {other_tag})" in caplog.text


def test_a_domain_without_champion_cannot_be_served(paths: LakePaths) -> None:
    with pytest.raises(scoring.NoChampionError, match="no champion"):
        PredictionService(CHURN, paths)
