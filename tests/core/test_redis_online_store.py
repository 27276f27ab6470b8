"""The production profile's online store: Feast's Redis store, chosen by LAKEHOUSE_ONLINE_STORE, on a real Redis.

Uses database 13 of the Redis at 127.0.0.1:6379 (LAKEHOUSE_TEST_REDIS_URL to change it), emptied
before and after.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lakehouse.demos.churn.domain import CHURN
from lakehouse.feature_store import feast_objects, materialization
from lakehouse.feature_store.feast_objects import REDIS_STORE_TYPE
from lakehouse.feature_store.redis_online_store import LakehouseRedisOnlineStore
from lakehouse.paths import DATA_ROOT_ENV, LakePaths
from lakehouse.serving import scoring
from lakehouse.serving.batch_scores import precomputed_scores, publish_online
from tests.conftest import copy_with_champion, missing_server

pytestmark = pytest.mark.integration  # needs the machine's server (skips, saying why, without one)

REDIS_URL = os.environ.get("LAKEHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
UNKNOWN_ID = 10**9


def _flush() -> None:
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


@pytest.fixture(scope="module")
def redis_lake(lake: LakePaths, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the session lake (with a churn champion) whose online store is the test Redis, materialized."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.ConnectionError as exc:
        missing_server(f"no Redis at {REDIS_URL} ({exc}); start one (the README's Production profile) to run these")
    copy = copy_with_champion(lake, tmp_path_factory.mktemp("redis"))
    sqlite_store = feast_objects.feature_store(copy)
    _flush()
    with pytest.MonkeyPatch.context() as mp:  # the setting only while the store is made
        mp.setenv(feast_objects.ONLINE_STORE_ENV, REDIS_URL)
        store = feast_objects.feature_store(copy)
    yield copy, store, sqlite_store, materialization.materialize_online(store, CHURN, copy, full_refresh=True)
    _flush()


def test_the_online_store_is_chosen_by_one_setting(paths: LakePaths, monkeypatch: pytest.MonkeyPatch) -> None:
    assert feast_objects.resolved_yaml(paths)["online_store"]["path"] == str(paths.feast / "online_store.db")
    monkeypatch.setenv(feast_objects.ONLINE_STORE_ENV, "redis://:secret@10.0.0.5:6380/2")
    assert feast_objects.resolved_yaml(paths)["online_store"] == {
        "type": REDIS_STORE_TYPE,
        "connection_string": "10.0.0.5:6380,db=2,password=secret",
    }
    # What the UI shows of it (the online_features asset's metadata): no password.
    assert feast_objects.store_locations(paths)["online_store"] == "redis: 10.0.0.5:6380 db=2"
    assert feast_objects.online_store_kind() == "redis"
    written = feast_objects.write_resolved_yaml(paths)  # for `feast -f`: the password is there, so owner-only
    assert "password=secret" in written.read_text() and written.stat().st_mode & 0o077 == 0
    for bad in ("http://host", "redis://host/first", "redis://"):
        monkeypatch.setenv(feast_objects.ONLINE_STORE_ENV, bad)
        with pytest.raises(ValueError, match=feast_objects.ONLINE_STORE_ENV):
            feast_objects.resolved_yaml(paths)
    monkeypatch.setenv(feast_objects.ONLINE_STORE_ENV, "sqlite")
    assert (
        feast_objects.resolved_yaml(paths)["online_store"]["type"]
        == "lakehouse.feature_store.sqlite_online_store.LakehouseSqliteOnlineStore"
    )


def test_materializing_into_redis_gives_the_values_of_the_sqlite_store(redis_lake) -> None:
    paths, store, sqlite_store, result = redis_lake
    assert store.config.online_store.type == REDIS_STORE_TYPE
    import duckdb

    for view in CHURN.feature_views:  # every entity of every view written: counted in and out
        [(entities,)] = duckdb.sql(
            f"SELECT count(DISTINCT {CHURN.entity_key}) FROM read_parquet('{paths.features(view.name)}')"
        ).fetchall()
        assert result["rows"][view.name] == entities
    ids = [*range(1, 80), UNKNOWN_ID]
    assert feast_objects.online_features(store, CHURN, ids) == feast_objects.online_features(sqlite_store, CHURN, ids)
    champion = scoring.load_champion(paths, CHURN.name)
    # The service's lookup reads Redis view by view (Feast's online_read) and answers as on sqlite, times included.
    assert scoring.online_lookup(store, champion, CHURN.entity_key, ids) == scoring.online_lookup(
        sqlite_store, champion, CHURN.entity_key, ids
    )
    again = materialization.materialize_online(store, CHURN, paths)  # nothing new since the last window
    assert set(again["rows"].values()) == {0}


def test_the_redis_client_retries_a_bounded_number_of_times(redis_lake) -> None:
    """redis-py retries a refused connection for about 8 s by default; the service must fail fast instead."""
    from lakehouse.feature_store.redis_online_store import RETRIES

    _, store, _, _ = redis_lake
    client = store._get_provider().online_store._get_client(store.config.online_store)
    assert client.get_retry().get_retries() == RETRIES == 2


def test_one_read_for_all_views_answers_as_feasts_per_view_reads(redis_lake) -> None:
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

    _, store, _, _ = redis_lake
    online_store = store._get_provider().online_store
    assert isinstance(online_store, LakehouseRedisOnlineStore)
    views = [store.get_feature_view(v.name) for v in CHURN.feature_views]
    keys = [
        EntityKeyProto(join_keys=[CHURN.entity_key], entity_values=[ValueProto(int64_val=i)])
        for i in (1, 2, 3, 2, UNKNOWN_ID)
    ]  # a repeated and an absent key too
    together = online_store.online_read_views(store.config, views, keys)
    for view, answer in zip(views, together):
        assert answer == online_store.online_read(store.config, view, keys)


def test_repeated_lookups_ask_redis_for_the_same_features(redis_lake, monkeypatch: pytest.MonkeyPatch) -> None:
    """Feast's Redis online_read appends to the feature list it is given: the lookup must not hand it its own.

    (The per-view read that online stores without online_read_views get.)
    """
    from feast.infra.online_stores.redis import RedisOnlineStore

    paths, store, _, _ = redis_lake
    champion = scoring.load_champion(paths, CHURN.name)
    monkeypatch.delattr(LakehouseRedisOnlineStore, "online_read_views")
    asked: list[tuple[str, tuple[str, ...]]] = []
    read = RedisOnlineStore.online_read

    def recording(self, config, table, entity_keys, requested_features=None):
        asked.append((table.name, tuple(requested_features)))
        return read(self, config, table, entity_keys, requested_features)

    monkeypatch.setattr(RedisOnlineStore, "online_read", recording)
    for customer in range(1, 6):
        scoring.online_lookup(store, champion, CHURN.entity_key, [customer])
    views = {view.name: [f.name for f in view.features if f.name in champion.features] for view in CHURN.feature_views}
    assert len(asked) == 5 * len(views)
    assert set(asked) == {(name, tuple(features)) for name, features in views.items() if features}


def test_the_service_and_precomputed_scores_work_on_redis(redis_lake, monkeypatch: pytest.MonkeyPatch) -> None:
    from bentos.churn_service import ChurnService

    paths, store, sqlite_store, _ = redis_lake
    monkeypatch.setenv(feast_objects.ONLINE_STORE_ENV, REDIS_URL)
    monkeypatch.setenv(DATA_ROOT_ENV, str(paths.root))
    service = ChurnService()
    assert service.store.config.online_store.type == REDIS_STORE_TYPE
    champion = scoring.load_champion(paths, CHURN.name)
    ids = list(range(1, 21))
    served = service.predict_ids(customer_ids=[*ids, UNKNOWN_ID])["predictions"]
    expected = scoring.score_rows(
        champion, CHURN.entity_key, ids, scoring.online_rows(sqlite_store, champion, CHURN.entity_key, ids)
    )
    assert [p.get("score") for p in served[:-1]] == [r.get("score") for r in expected]
    assert served[-1]["error"].startswith("unknown entity")

    from lakehouse.serving.batch_scores import batch_score

    batch_score(paths, CHURN)
    assert publish_online(store, CHURN, paths) > 0
    hits = precomputed_scores(store, CHURN, [*ids, UNKNOWN_ID])
    assert hits[-1] is None and any(hit is not None for hit in hits[:-1])
    assert {hit["model_version"] for hit in hits if hit} == {champion.tag}


def test_an_unreachable_redis_makes_the_service_unready_and_its_lookups_503(redis_lake) -> None:
    """A real `bentoml serve` on a Redis that does not answer: alive, not ready; lookups 503, not 500."""
    import urllib.error
    import urllib.request

    from bento_process import post_json, start_serve

    paths = redis_lake[0]
    server = start_serve(
        paths, extra_env={feast_objects.ONLINE_STORE_ENV: "redis://127.0.0.1:1/0"}
    )  # nothing on port 1
    try:
        server.wait_ready(probe="/livez")
        with pytest.raises(urllib.error.HTTPError) as unready:
            urllib.request.urlopen(f"{server.url}/readyz", timeout=30)
        assert unready.value.code == 503
        # BentoML shows no message for a 5xx: the reason ("the online store did not answer") is in the log.
        assert post_json(server.url, "/predict_ids", {"customer_ids": [1]})[0] == 503
        assert post_json(server.url, "/explain", {"customer_id": 1})[0] == 503
        assert post_json(server.url, "/model_info", {})[0] == 200  # what needs no online store still answers
    finally:
        server.stop()
    assert "the online store did not answer" in Path(server.log.name).read_text()


def test_the_summary_does_not_count_a_shared_redis(redis_lake, monkeypatch: pytest.MonkeyPatch) -> None:
    from lakehouse_cli.summary import online_entity_count

    paths = redis_lake[0]
    assert online_entity_count(paths) > 0  # the copy's own sqlite store
    monkeypatch.setenv(feast_objects.ONLINE_STORE_ENV, REDIS_URL)
    assert online_entity_count(paths) is None
    assert Path(paths.feast / "online_store.db").exists()


def test_a_data_root_switched_to_redis_gets_every_row_there_and_an_unreachable_redis_fails_the_step(
    lake: LakePaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Window ends are kept per store: what sqlite holds says nothing about a Redis that was never written."""
    import redis

    url = REDIS_URL.rsplit("/", 1)[0] + "/12"  # not the module's database
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).flushdb()
    except redis.ConnectionError as exc:
        missing_server(f"no Redis at {url} ({exc})")
    paths = copy_with_champion(lake, tmp_path)
    on_sqlite = materialization.materialization_state(paths)
    assert set(on_sqlite) == {v.name for v in CHURN.feature_views}
    try:
        monkeypatch.setenv(feast_objects.ONLINE_STORE_ENV, url)
        assert materialization.materialization_state(paths) == {}  # a store never written to
        result = materialization.materialize_online(feast_objects.feature_store(paths), CHURN, paths)
        assert all(n > 0 for n in result["rows"].values()), result
        assert redis.Redis.from_url(url).dbsize() > 0
        assert materialization.materialization_state(paths) == on_sqlite  # the same window ends, for Redis
        again = materialization.materialize_online(feast_objects.feature_store(paths), CHURN, paths)
        assert again["rows"] == {v.name: 0 for v in CHURN.feature_views}

        monkeypatch.setenv(feast_objects.ONLINE_STORE_ENV, "redis://127.0.0.1:1/0")  # nothing listens there
        with pytest.raises(redis.ConnectionError):
            materialization.materialize_online(feast_objects.feature_store(paths), CHURN, paths)
    finally:
        redis.Redis.from_url(url).flushdb()
    monkeypatch.delenv(feast_objects.ONLINE_STORE_ENV)
    assert materialization.materialization_state(paths) == on_sqlite  # sqlite's own windows are untouched
