"""The churn service: scoring library, service class in-process, its ASGI app, and one real `bentoml serve`."""

from __future__ import annotations

import json
import math
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from bento_process import bentoml_serve, post_json

from lakehouse.demos.churn.domain import CHURN
from lakehouse.feature_store.feast_objects import feature_store
from lakehouse.ml import model_registry
from lakehouse.ml.candidates import latest_candidate
from lakehouse.paths import DATA_ROOT_ENV, LakePaths
from lakehouse.serving import scoring

UNKNOWN_ID = 10**9


@pytest.fixture(scope="module")
def served(lake: LakePaths):
    """The session lake with a churn champion, set as this process's data root for the module."""
    if model_registry.champion(lake, CHURN.name) is None:
        tag = latest_candidate(lake, CHURN)
        assert tag, "the test lake has no trained candidate"
        model_registry.promote(lake, CHURN.name, tag, "test", action="manual")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(DATA_ROOT_ENV, str(lake.root))
        mp.setenv("BENTOML_HOME", str(lake.root / "bentoml"))
        mp.delenv("LAKEHOUSE_API_KEY", raising=False)
        yield lake


@pytest.fixture(scope="module")
def champion(served: LakePaths) -> scoring.ChampionModel:
    return scoring.load_champion(served, CHURN.name)


@pytest.fixture(scope="module")
def known_ids(served: LakePaths, champion: scoring.ChampionModel) -> list[int]:
    """A few customers that do have online features."""
    store = feature_store(served)
    rows = scoring.online_rows(store, champion, CHURN.entity_key, list(range(1, 41)))
    ids = [i for i, row in zip(range(1, 41), rows) if any(v is not None for v in row.values())]
    assert len(ids) >= 5
    return ids[:10]


@pytest.fixture(scope="module")
def service(served: LakePaths):
    from bentos.churn_service import ChurnService

    return ChurnService()


@pytest.fixture(scope="module")
def client(served: LakePaths):
    from starlette.testclient import TestClient

    from bentos.churn_service import ChurnService

    with TestClient(ChurnService.to_asgi()) as c:
        yield c


def full_row(champion: scoring.ChampionModel) -> dict:
    return {f: (champion.categories[f][0] if f in champion.categories else 1.0) for f in champion.features}


# --- the scoring library ---------------------------------------------------------------------------


def test_load_champion_without_champion_is_a_clear_error(paths: LakePaths) -> None:
    with pytest.raises(scoring.NoChampionError, match="no champion"):
        scoring.load_champion(paths, CHURN.name)


def test_tampered_model_stops_loading_and_service_startup(
    served: LakePaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = LakePaths(tmp_path / "data")
    for part in ("bentoml", "registry"):
        shutil.copytree(served.root / part, copy.root / part)
    tag = model_registry.champion(copy, CHURN.name)
    version = tag.split(":")[1]
    model_file = copy.root / "bentoml" / "models" / f"{CHURN.name}_model" / version / model_registry.MODEL_FILE
    model_file.write_text(model_file.read_text() + "\n")
    with pytest.raises(model_registry.ModelIntegrityError):
        scoring.load_champion(copy, CHURN.name)
    from bentos.churn_service import ChurnService

    monkeypatch.setenv(DATA_ROOT_ENV, str(copy.root))
    with pytest.raises(model_registry.ModelIntegrityError):
        ChurnService()


def test_score_and_explain(champion: scoring.ChampionModel) -> None:
    frame = scoring.features_frame(champion, [full_row(champion), {**full_row(champion), "usage_trend": None}])
    results = scoring.score(champion, frame)
    assert len(results) == 2
    for r in results:
        assert 0.0 <= r["score"] <= 1.0
        assert r["decision"] == (r["score"] >= champion.threshold)
        assert r["model_version"] == champion.tag
    explained = scoring.explain(champion, frame[:1], top=3)
    assert len(explained["contributions"]) == 3
    magnitudes = [abs(c["contribution"]) for c in explained["contributions"]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert {c["feature"] for c in explained["contributions"]} <= set(champion.features)
    # SHAP values add up to the raw score: the logit of the probability.
    assert math.isclose(1 / (1 + math.exp(-explained["raw_score"])), results[0]["score"], rel_tol=1e-6)


def test_features_frame_names_bad_input(champion: scoring.ChampionModel) -> None:
    row = full_row(champion)
    del row[champion.features[0]]
    with pytest.raises(scoring.FeatureInputError, match=champion.features[0]):
        scoring.features_frame(champion, [{**row, "bogus": 1}])
    with pytest.raises(scoring.FeatureInputError, match="bogus"):
        scoring.features_frame(champion, [{**full_row(champion), "bogus": 1}])
    cat = next(iter(champion.categories))
    with pytest.raises(scoring.FeatureInputError, match=cat):
        scoring.features_frame(champion, [{**full_row(champion), cat: "no-such-value"}])


# --- the service class, in-process ---------------------------------------------------------------


def test_service_methods_in_process(service, champion: scoring.ChampionModel, known_ids: list[int]) -> None:
    out = service.predict_ids(customer_ids=[known_ids[0], UNKNOWN_ID])
    first, unknown = out["predictions"]
    assert first["customer_id"] == known_ids[0] and first["model_version"] == champion.tag
    assert isinstance(first["missing_features"], list) and 0 <= first["score"] <= 1
    assert unknown == {"customer_id": UNKNOWN_ID, "error": "unknown entity: no online features"}
    # The test lake's features are from 2025: older than every view's ttl, so they are flagged stale.
    assert first["stale"] is True and first["stale_features"] and first["feature_age_hours"] > 48
    assert first["features_as_of"].startswith("2025-")

    scored = service.predict_features(rows=[full_row(champion)])["predictions"][0]
    assert (
        scored["score"] == scoring.score(champion, scoring.features_frame(champion, [full_row(champion)]))[0]["score"]
    )

    explained = service.explain(customer_id=known_ids[0], top=4)
    assert len(explained["contributions"]) == 4 and "bias" in explained

    info = service.model_info()
    assert info["model_version"] == champion.tag and info["threshold"] == champion.threshold
    assert info["feature_service"] == champion.feature_service


def test_the_cores_errors_become_bentomls_with_their_status_and_message() -> None:
    """The service's methods are PredictionService's: its plain errors are mapped to HTTP statuses here."""
    from bentoml.exceptions import InvalidArgument, NotFound, ServiceUnavailable

    from bentos.service import HTTP_ERRORS, http_errors
    from lakehouse.serving import prediction_service as core

    cases = [
        (core.InvalidRequest, InvalidArgument, 400),
        (core.NotFound, NotFound, 404),
        (core.Unavailable, ServiceUnavailable, 503),
    ]
    assert set(HTTP_ERRORS) == set(core.RequestError.__subclasses__()) == {error for error, _, _ in cases}
    for error, http, status in cases:

        @http_errors
        def failing(self, **request):
            raise error("the reason")

        with pytest.raises(http, match="^the reason$") as raised:
            failing(None, x=1)
        assert int(raised.value.error_code) == status


# --- HTTP through the ASGI app --------------------------------------------------------------------


def test_http_endpoints(client, champion: scoring.ChampionModel, known_ids: list[int]) -> None:
    r = client.post("/predict_ids", json={"customer_ids": [*known_ids[:3], UNKNOWN_ID]})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"  # declared on every endpoint (service.JsonAnswer)
    preds = r.json()["predictions"]
    assert [p["customer_id"] for p in preds] == [*known_ids[:3], UNKNOWN_ID]
    assert "error" in preds[-1] and "score" not in preds[-1]

    r = client.post("/predict_features", json={"rows": [full_row(champion)]})
    assert r.status_code == 200 and r.json()["predictions"][0]["model_version"] == champion.tag

    r = client.post("/explain", json={"customer_id": known_ids[0]})
    assert r.status_code == 200 and len(r.json()["contributions"]) == 5
    assert client.post("/explain", json={"customer_id": UNKNOWN_ID}).status_code == 404

    r = client.post("/model_info", json={})
    assert r.status_code == 200 and r.json()["model_version"] == champion.tag
    assert r.headers["content-type"] == "application/json"
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize(
    "path,body",
    [
        ("/predict_ids", {"customer_ids": []}),
        ("/predict_ids", {"customer_ids": list(range(1, 1002))}),
        ("/predict_ids", {"customer_ids": ["1"]}),
        ("/predict_ids", {"customer_ids": [0]}),
        ("/predict_ids", {"customer_ids": [1], "extra": True}),
        ("/predict_ids", {}),
        ("/predict_ids", b"{not json"),
        ("/predict_ids", b"[1, 2]"),
        ("/predict_features", {"rows": []}),
        ("/predict_features", {"rows": [{"monthly_price": [1]}]}),
        ("/predict_features", b'{"rows": [{"monthly_price": NaN}]}'),
        ("/predict_features", b'{"rows": [{"monthly_price": Infinity}]}'),
        ("/explain", {"customer_id": 1.5}),
        ("/explain", {"customer_id": 1, "top": 0}),
        ("/model_info", {"anything": 1}),
    ],
)
def test_malformed_requests_are_4xx(client, path: str, body) -> None:
    if isinstance(body, bytes):
        r = client.post(path, content=body, headers={"content-type": "application/json"})
    else:
        r = client.post(path, json=body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)


def test_feature_rows_name_unknown_and_missing_features(client, champion: scoring.ChampionModel) -> None:
    row = full_row(champion)
    dropped = champion.features[-1]
    del row[dropped]
    r = client.post("/predict_features", json={"rows": [{**row, "not_a_feature": 1}]})
    assert r.status_code == 400
    assert "not_a_feature" in r.text and dropped in r.text


def test_api_key(client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_API_KEY", "s3cret")
    assert client.post("/model_info", json={}).status_code == 401
    assert client.post("/model_info", json={}, headers={"x-api-key": "wrong"}).status_code == 401
    assert client.post("/predict_ids", json={"customer_ids": [1]}).status_code == 401
    assert client.post("/model_info", json={}, headers={"x-api-key": "s3cret"}).status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_parsed(
    client, known_ids: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_MAX_BODY_BYTES", "2000")
    big = b'{"customer_ids": [' + b",".join(b"1" for _ in range(1500)) + b"]}"  # 3 KB, valid JSON
    answer = client.post("/predict_ids", content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "over 2000 bytes" in answer.json()["error"]
    # Without a content-length (chunked), the body is counted as it arrives.
    chunked = client.post(
        "/predict_ids", content=iter([big[:1000], big[1000:]]), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    small = json.dumps({"customer_ids": known_ids[:2]}).encode()
    for body in (small, iter([small[:5], small[5:]])):
        ok = client.post("/predict_ids", content=body, headers={"content-type": "application/json"})
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2


# --- a real `bentoml serve` -------------------------------------------------------------------------


def malformed_requests(n: int, seed: int = 7) -> list[tuple[str, bytes, str]]:
    """n deterministic malformed requests: bad JSON, wrong types, missing/extra fields, NaN, huge, pickle."""
    import json
    import pickle
    import random

    rng = random.Random(seed)
    wrong_values = ["1", 1.5, None, True, [], {}, "NaN", -1e309, 2**70, [1, "x"], {"a": 1}]
    makers = [
        lambda: ("/predict_ids", json.dumps({"customer_ids": [rng.choice(wrong_values)]}).encode()),
        lambda: ("/predict_ids", json.dumps({"customer_ids": rng.choice(wrong_values)}).encode()),
        lambda: ("/predict_ids", json.dumps({"customer_ids": [1], "extra": rng.random()}).encode()),
        lambda: ("/predict_ids", json.dumps({"ids": [1]}).encode()),
        lambda: ("/predict_ids", json.dumps({"customer_ids": []}).encode()),
        lambda: ("/predict_ids", json.dumps({"customer_ids": list(range(1, 1002 + rng.randrange(50)))}).encode()),
        lambda: ("/predict_ids", b'{"customer_ids": [NaN]}'),
        lambda: ("/predict_ids", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))),
        lambda: ("/predict_features", json.dumps({"rows": [{"no_such_feature": rng.random()}]}).encode()),
        lambda: ("/predict_features", json.dumps({"rows": rng.choice(wrong_values)}).encode()),
        lambda: ("/predict_features", b'{"rows": [{"plan": Infinity}]}'),
        lambda: ("/explain", json.dumps({"customer_id": rng.choice(wrong_values)}).encode()),
        lambda: ("/explain", json.dumps({"customer_id": -rng.randrange(1, 10**6)}).encode()),
        lambda: ("/model_info", json.dumps({"unexpected": rng.random()}).encode()),
        lambda: ("/precomputed", json.dumps({"customer_ids": [rng.choice(wrong_values)]}).encode()),
        lambda: (rng.choice(["/predict_ids", "/predict_features", "/explain"]), b"[1, 2, 3]"),
    ]
    requests = []
    for i in range(n):
        path, body = rng.choice(makers)()
        ctype = "application/json"
        if i % 25 == 0:  # pickle must never be accepted, whatever the endpoint
            body, ctype = pickle.dumps({"customer_ids": [1]}), "application/python-pickle"
        requests.append((path, body, ctype))
    return requests


def post_status(base: str, path: str, body: bytes, content_type: str) -> int:
    """The HTTP status of one POST (errors included)."""
    request = urllib.request.Request(base + path, data=body, headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.integration  # starts a real `bentoml serve`
def test_bentoml_serve_matches_in_process_scores_and_answers_500_malformed_requests_with_4xx(
    served: LakePaths, champion: scoring.ChampionModel, known_ids: list[int]
) -> None:
    with bentoml_serve(served) as base:
        ids = [*known_ids, UNKNOWN_ID]
        status, body = post_json(base, "/predict_ids", {"customer_ids": ids})
        assert status == 200, body
        served_preds = body["predictions"]

        rows = scoring.online_rows(feature_store(served), champion, CHURN.entity_key, known_ids)
        local = scoring.score(champion, scoring.features_frame(champion, rows))
        assert [p["customer_id"] for p in served_preds] == ids
        for p, want in zip(served_preds, local):
            assert p["model_version"] == champion.tag
            assert p["score"] == pytest.approx(want["score"], rel=1e-9, abs=1e-12)
            assert p["decision"] == want["decision"]
        assert served_preds[-1]["error"] == "unknown entity: no online features"

        statuses = [post_status(base, path, body, ctype) for path, body, ctype in malformed_requests(500)]
        assert len(statuses) == 500
        failures = [(p, b[:80], c, s) for (p, b, c), s in zip(malformed_requests(500), statuses) if s >= 500]
        assert failures == [], "a malformed request got a 5xx"
        assert all(400 <= s < 500 for s in statuses), sorted(set(statuses))
        # A 10 MB body is refused at the default limit (4 MiB) before a byte of it is read: the answer
        # comes back with only the headers sent.
        import http.client
        from urllib.parse import urlsplit

        conn = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=30)
        conn.putrequest("POST", "/predict_ids")
        conn.putheader("content-type", "application/json")
        conn.putheader("content-length", str(10_000_000))
        conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 413 and "request body over" in json.loads(answer.read())["error"]
        conn.close()


def test_a_running_service_switches_to_a_new_champion_without_a_restart(served: LakePaths, tmp_path: Path) -> None:
    """Promote another model while the service holds the first: the next request uses the new one."""
    from lakehouse.ml.candidates import TrainingOptions, train_candidate

    copy = LakePaths(tmp_path / "data")
    shutil.copytree(served.root, copy.root)
    switches = []
    watcher = scoring.ChampionWatcher(copy, "churn", on_switch=lambda old, new: switches.append((old.tag, new.tag)))
    first = watcher.current()
    other = train_candidate(copy, CHURN, TrainingOptions(tune=False, params={"num_leaves": 7}))
    assert other["tag"] != first.tag
    model_registry.promote(copy, "churn", other["tag"], "test: a different model", action="manual")
    held = first  # a request in flight keeps the model it took
    assert watcher.current().tag == other["tag"]
    assert switches == [(first.tag, other["tag"])]
    assert held.tag == first.tag
    model_registry.rollback(copy, "churn", "test: back")
    assert watcher.current().tag == first.tag


@pytest.fixture(scope="module")
def other_version(served: LakePaths, tmp_path_factory: pytest.TempPathFactory) -> tuple[LakePaths, str]:
    """A copy of the lake with a second churn model that was never promoted: (its paths, its tag)."""
    from lakehouse.ml.candidates import TrainingOptions, train_candidate

    copy = LakePaths(tmp_path_factory.mktemp("on_demand") / "data")
    shutil.copytree(served.root, copy.root)
    other = train_candidate(copy, CHURN, TrainingOptions(tune=False, params={"num_leaves": 7}))
    assert other["tag"] != model_registry.champion(copy, CHURN.name)
    return copy, other["tag"]


def test_a_registered_version_answers_on_demand(
    other_version: tuple[LakePaths, str],
    champion: scoring.ChampionModel,
    known_ids: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """model_version loads that version once and scores exactly as it does offline; the champion stays the default."""
    from bentos.churn_service import ChurnService

    paths, tag = other_version
    monkeypatch.setenv(DATA_ROOT_ENV, str(paths.root))
    service = ChurnService()
    other = scoring.champion_model(*model_registry.load_domain_model(paths, CHURN.name, tag))
    ids = known_ids[:3]
    version = tag.partition(":")[2]

    out = service.predict_ids(customer_ids=ids, model_version=version[:8])  # a unique prefix will do
    expected = scoring.score_rows(
        other, CHURN.entity_key, ids, scoring.online_rows(feature_store(paths), other, CHURN.entity_key, ids)
    )
    assert out["model_version"] == tag and out["threshold"] == other.threshold
    assert [p["score"] for p in out["predictions"]] == [r["score"] for r in expected]
    assert {p["model_version"] for p in out["predictions"]} == {tag}
    assert [p["score"] for p in out["predictions"]] != [
        p["score"] for p in service.predict_ids(customer_ids=ids)["predictions"]
    ], "the two models should differ"
    assert service.predict_ids(customer_ids=ids)["model_version"] == champion.tag  # no model_version: the champion
    assert service.predict_ids(customer_ids=ids, model_version=champion.tag)["model_version"] == champion.tag

    row = full_row(other)
    assert (
        service.predict_features(rows=[row], model_version=tag)["predictions"][0]["score"]
        == scoring.score(other, scoring.features_frame(other, [row]))[0]["score"]
    )
    assert service.explain(customer_id=ids[0], model_version=tag)["model_version"] == tag
    assert service.model_info()["loaded_on_demand"] == [tag]  # loaded once, for every later request too
    assert service.core.on_demand.get(version[:8]) is service.core.on_demand.get(version[:8])


def test_on_demand_models_keep_the_most_recently_used(
    other_version: tuple[LakePaths, str], champion: scoring.ChampionModel
) -> None:
    paths, tag = other_version
    models = scoring.OnDemandModels(paths, CHURN.name, size=1)
    first = models.get(tag)
    models.get(champion.tag)
    assert models.loaded() == [champion.tag]
    assert models.get(tag) is not first  # evicted, so loaded again
    with pytest.raises(model_registry.RegistryError, match="no model"):
        models.get("churn_model:nosuchversion")


@pytest.mark.parametrize(
    "version,status",
    [
        ("nosuchversion", 404),
        ("churn_model:nosuchversion", 404),
        ("a:b:c", 404),
        (":", 404),
        ("../../x", 404),
        ("", 400),
        ("x" * 101, 400),
        (7, 400),
        (None, 200),
    ],
)
def test_an_unknown_model_version_is_a_clear_4xx(client, known_ids: list[int], version, status: int) -> None:
    r = client.post("/predict_ids", json={"customer_ids": known_ids[:1], "model_version": version})
    assert r.status_code == status or (status == 400 and 400 <= r.status_code < 500), (r.status_code, r.text)
    if status == 404:
        assert "model_version" in r.text


def test_freshness_flags_features_older_than_their_ttl() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2025, 5, 1, tzinfo=UTC)
    hours = 3600.0
    times = {"a": now.timestamp() - 30 * hours, "b": now.timestamp() - 72 * hours, "c": None}
    ttl = {"a": 48 * hours, "b": 48 * hours, "c": 48 * hours}
    result = scoring.freshness(times, ttl, now.timestamp())
    assert result == {
        "features_as_of": (now - timedelta(days=3)).isoformat(),
        "feature_age_hours": 72.0,
        "stale": True,
        "stale_features": ["b"],
    }
    assert scoring.freshness({"a": now.timestamp()}, {"a": 48 * hours}, now.timestamp())["stale"] is False


def test_online_lookup_reads_what_get_online_features_returns(
    served: LakePaths, champion: scoring.ChampionModel, known_ids: list[int]
) -> None:
    """Values, their types and event times equal Feast's own get_online_features; unknown ids get all None."""
    store = feature_store(served)
    ids = [*known_ids, UNKNOWN_ID, known_ids[0]]
    rows, times = scoring.online_lookup(store, champion, CHURN.entity_key, ids)
    service = store.get_feature_service(champion.feature_service)
    want = store.get_online_features(features=service, entity_rows=[{CHURN.entity_key: i} for i in ids]).to_dict(
        include_event_timestamps=True
    )
    for n in range(len(ids)):
        assert rows[n] == {f: want[f][n] for f in champion.features}
        assert [type(v) for v in rows[n].values()] == [type(want[f][n]) for f in champion.features]
        assert times[n] == {
            f: (float(want[f + "__ts"][n]) if want[f][n] is not None else None) for f in champion.features
        }
    assert set(rows[-2].values()) == {None} and set(times[-2].values()) == {None}


def test_online_lookup_names_features_the_service_does_not_serve(
    served: LakePaths, champion: scoring.ChampionModel
) -> None:
    import dataclasses

    wider = dataclasses.replace(champion, tag=champion.tag + "-wider", features=[*champion.features, "no_such_feature"])
    with pytest.raises(model_registry.RegistryError, match="no_such_feature"):
        scoring.online_lookup(feature_store(served), wider, CHURN.entity_key, [1])


def test_predictions_use_the_models_own_thread_count(
    champion: scoring.ChampionModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LightGBM's predict ignores the trained num_threads, so scoring passes the model's own (1 by default)."""
    assert champion.model.params["num_threads"] == champion.model.num_threads == 1
    booster, calls = champion.model.booster, []
    real = booster.predict
    monkeypatch.setattr(booster, "predict", lambda *a, **kw: calls.append(kw.get("num_threads")) or real(*a, **kw))
    scoring.predict_rows(champion, [full_row(champion)])
    scoring.score(champion, scoring.features_frame(champion, [full_row(champion)]))
    champion.model.predict(scoring.features_frame(champion, [full_row(champion)]))  # evaluation and the gate
    assert calls == [1, 1, 1]
