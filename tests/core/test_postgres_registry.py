"""The production profile's Feast registry: Feast's SQL registry on a real PostgreSQL, chosen by LAKEHOUSE_FEAST_REGISTRY.

Creates a database of its own on the PostgreSQL at 127.0.0.1:5432 (LAKEHOUSE_TEST_POSTGRES_URL, an
administrative connection, to change it) and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid

import pandas as pd
import pytest

from lakehouse.demos.churn.domain import CHURN
from lakehouse.feature_store import feast_objects, materialization
from lakehouse.paths import DATA_ROOT_ENV, LakePaths
from lakehouse.serving import scoring
from tests.conftest import copy_with_champion, missing_server

pytestmark = pytest.mark.integration  # needs the machine's server (skips, saying why, without one)

ADMIN_URL = os.environ.get("LAKEHOUSE_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def registry_url():
    """A new, empty PostgreSQL database for the registry (dropped afterwards); its URL."""
    import psycopg

    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        missing_server(
            f"no PostgreSQL at {ADMIN_URL} ({exc}); start one (the README's Production profile) to run these"
        )
    name = f"lakehouse_test_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def sql_lake(lake: LakePaths, registry_url: str, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the session lake whose Feast registry is the new database, applied and materialized."""
    copy = copy_with_champion(lake, tmp_path_factory.mktemp("sql_registry"))
    file_store = feast_objects.feature_store(copy)
    with pytest.MonkeyPatch.context() as mp:  # the setting only while the store is made
        mp.setenv(feast_objects.REGISTRY_ENV, registry_url)
        store = feast_objects.feature_store(copy)
    applied = feast_objects.apply_definitions(store, CHURN, copy)
    return copy, store, file_store, applied


def test_the_registry_is_chosen_by_one_setting(paths: LakePaths, monkeypatch: pytest.MonkeyPatch) -> None:
    assert feast_objects.resolved_yaml(paths)["registry"]["path"] == str(paths.feast / "registry.db")
    monkeypatch.setenv(feast_objects.REGISTRY_ENV, "postgresql://feast:pw@db:5432/feast")
    settings = feast_objects.resolved_yaml(paths)["registry"]
    assert settings["registry_type"] == "sql" and settings["path"] == "postgresql+psycopg://feast:pw@db:5432/feast"
    # What the UI shows of it (the feast_registry asset's metadata): no password.
    assert feast_objects.store_locations(paths)["registry"] == "sql: postgresql+psycopg://feast@db:5432/feast"
    for bad in ("mysql://db/feast", "postgresql://db:5432", "registry.db"):
        monkeypatch.setenv(feast_objects.REGISTRY_ENV, bad)
        with pytest.raises(ValueError, match=feast_objects.REGISTRY_ENV):
            feast_objects.resolved_yaml(paths)


def test_the_sql_registry_holds_the_domain_and_serves_features(sql_lake, registry_url: str) -> None:
    import psycopg

    paths, store, file_store, applied = sql_lake
    assert store.config.registry.registry_type == "sql"
    assert applied["feature_views"] == sorted(v.name for v in file_store.list_feature_views())
    assert applied["feature_services"] == [s.name for s in file_store.list_feature_services()]
    with psycopg.connect(registry_url) as con:  # really in PostgreSQL
        [(views,)] = con.execute("SELECT count(*) FROM feature_views WHERE project_id = 'lakehouse'").fetchall()
    assert views == len(applied["feature_views"])

    result = materialization.materialize_online(store, CHURN, paths, full_refresh=True)
    assert all(rows > 0 for rows in result["rows"].values())
    ids = [*range(1, 50), 10**9]
    assert feast_objects.online_features(store, CHURN, ids) == feast_objects.online_features(file_store, CHURN, ids)
    champion = scoring.load_champion(paths, CHURN.name)
    assert scoring.online_lookup(store, champion, CHURN.entity_key, ids) == scoring.online_lookup(
        file_store, champion, CHURN.entity_key, ids
    )

    # Point-in-time training rows through the SQL registry: the same as through the file registry.
    entity_df = pd.DataFrame(
        {CHURN.entity_key: [1, 2, 3, 10**9], "event_timestamp": pd.to_datetime(["2025-03-01"] * 4, utc=True)}
    )
    by_sql = feast_objects.historical_features(store, CHURN, entity_df).sort_values(CHURN.entity_key)
    by_file = feast_objects.historical_features(file_store, CHURN, entity_df).sort_values(CHURN.entity_key)
    pd.testing.assert_frame_equal(by_sql.reset_index(drop=True), by_file.reset_index(drop=True))
    assert len(by_sql) == len(entity_df)


def test_the_service_reads_through_the_sql_registry(
    sql_lake, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bentos.churn_service import ChurnService

    paths, _, file_store, _ = sql_lake
    monkeypatch.setenv(feast_objects.REGISTRY_ENV, registry_url)
    monkeypatch.setenv(DATA_ROOT_ENV, str(paths.root))
    service = ChurnService()
    assert service.store.config.registry.registry_type == "sql"
    champion = scoring.load_champion(paths, CHURN.name)
    ids = list(range(1, 11))
    served = service.predict_ids(customer_ids=ids)["predictions"]
    expected = scoring.score_rows(
        champion, CHURN.entity_key, ids, scoring.online_rows(file_store, champion, CHURN.entity_key, ids)
    )
    assert [p.get("score") for p in served] == [r.get("score") for r in expected]
