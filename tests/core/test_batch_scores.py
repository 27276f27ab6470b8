"""Batch scoring: the precomputed scores equal live scoring, one per active entity, looked up without the model."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from pyarrow import feather

from assets.resources import LakehouseResource
from assets.serving import batch_scores_asset
from lakehouse.demos.churn.domain import CHURN
from lakehouse.ml import model_registry
from lakehouse.ml.candidates import latest_candidate
from lakehouse.paths import LakePaths
from lakehouse.serving import scoring
from lakehouse.serving.batch_scores import (
    StaleFeaturesError,
    batch_score,
    latest_features,
    precomputed_scores,
    publish_online,
)


def _copy(lake: LakePaths, dest: Path) -> LakePaths:
    shutil.copytree(lake.root, dest / "data")
    return LakePaths(dest / "data")


@pytest.fixture(scope="module")
def scored(lake: LakePaths, tmp_path_factory: pytest.TempPathFactory) -> tuple[LakePaths, dict]:
    """A copy of the session lake with a churn champion, batch-scored once."""
    copy = _copy(lake, tmp_path_factory.mktemp("batch"))
    if model_registry.champion(copy, CHURN.name) is None:
        tag = latest_candidate(copy, CHURN)
        assert tag, "the test lake has no trained candidate"
        model_registry.promote(copy, CHURN.name, tag, "test", action="manual")
    return copy, batch_score(copy, CHURN)


def test_batch_scores_equal_live_scoring(scored: tuple[LakePaths, dict]) -> None:
    paths, stats = scored
    stored = pl.read_parquet(paths.batch_scores("churn"))
    assert stored.columns == ["customer_id", "event_timestamp", "score", "decision", "model_version", "scored_at"]
    features = latest_features(paths, CHURN)
    champion = scoring.load_champion(paths, CHURN.name)
    live = scoring.score(champion, features)
    assert stored["customer_id"].to_list() == features["customer_id"].to_list()
    assert stored["score"].to_list() == [r["score"] for r in live]  # exact, not approximate
    assert stored["decision"].to_list() == [r["decision"] for r in live]
    assert set(stored["model_version"]) == {champion.tag} == {stats["model_version"]}
    assert stored["event_timestamp"].to_list() == features["event_timestamp"].to_list()
    assert stats["rows"] == stored.height
    day = stored["event_timestamp"].max().date().isoformat()
    assert pl.read_parquet(paths.score_history("churn") / f"{day}.parquet").equals(stored)  # the day's copy
    assert stats["positives"] == int(stored["decision"].sum())
    assert stats["score_p50"] == pytest.approx(float(stored["score"].quantile(0.5)))


def test_latest_features_are_the_online_values(scored: tuple[LakePaths, dict]) -> None:
    """The batch reads what the online store holds: same feature values, so the same scores as live scoring."""
    from lakehouse.feature_store.feast_objects import feature_store

    paths, _ = scored
    champion = scoring.load_champion(paths, CHURN.name)
    features = latest_features(paths, CHURN)
    ids = features["customer_id"].to_list()[:100]
    online = scoring.online_rows(feature_store(paths), champion, CHURN.entity_key, ids)
    assert [{f: row[f] for f in champion.features} for row in features.head(100).iter_rows(named=True)] == online
    stored = pl.read_parquet(paths.batch_scores("churn")).head(100)
    live = scoring.score_rows(champion, CHURN.entity_key, ids, online)
    assert stored["score"].to_list() == [r["score"] for r in live]


def test_one_row_per_active_customer_and_none_for_cancelled(scored: tuple[LakePaths, dict]) -> None:
    paths, _ = scored
    stored = pl.read_parquet(paths.batch_scores("churn"))
    spine = pl.read_parquet(paths.spine("churn"))
    last_day = spine["day"].max()
    active = set(spine.filter(pl.col("day") == last_day)["customer_id"])
    assert stored["customer_id"].n_unique() == stored.height
    assert set(stored["customer_id"]) == active
    cancelled = pl.read_parquet(paths.silver("cancellations")).filter(pl.col("cancelled_at").cast(pl.Date) < last_day)[
        "customer_id"
    ]
    assert cancelled.len() > 0, "the test lake should have cancelled customers"
    assert not set(cancelled) & set(stored["customer_id"])
    # Customers who never appeared on the newest day get no score either.
    assert set(spine["customer_id"]) - active
    assert stored["score"].is_not_null().all() and stored["score"].is_between(0, 1).all()


def test_precomputed_scores_are_the_stored_rows_from_the_online_store(scored: tuple[LakePaths, dict]) -> None:
    from lakehouse.feature_store.feast_objects import feature_store

    paths, _ = scored
    store = feature_store(paths)
    stored = pl.read_parquet(paths.batch_scores("churn"))
    assert publish_online(store, CHURN, paths) == stored.height
    rows = [stored.row(n, named=True) for n in (0, stored.height // 2, stored.height - 1)]
    found = precomputed_scores(store, CHURN, [r["customer_id"] for r in rows] + [10**12])
    assert found[-1] is None  # never scored: no default
    for row, hit in zip(rows, found):
        assert hit["score"] == row["score"] and hit["decision"] == row["decision"]
        assert hit["model_version"] == row["model_version"]
        assert hit["features_as_of"].startswith(row["event_timestamp"].isoformat())


def test_batch_scores_before_the_first_champion_are_skipped_and_say_why(lake: LakePaths, tmp_path: Path) -> None:
    copy = _copy(lake, tmp_path)
    shutil.rmtree(copy.root / "registry", ignore_errors=True)
    with pytest.raises(scoring.NoChampionError):
        batch_score(copy, CHURN)
    # A publish run ahead of the first retraining: nothing to score yet, which is not a failure.
    result = dg.materialize(
        [batch_scores_asset(CHURN)],
        resources={"lakehouse": LakehouseResource(data_root=str(copy.root))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    [materialization] = result.asset_materializations_for_node("churn__batch_scores")
    assert materialization.metadata["status"].value == "skipped"
    assert "no champion model" in materialization.metadata["reason"].value
    assert not copy.batch_scores("churn").exists()


def test_feature_tables_out_of_step_with_the_spine_are_a_clear_error(lake: LakePaths, tmp_path: Path) -> None:
    """A spine rebuilt without its feature views must not pair one customer's features with another's."""
    copy = _copy(lake, tmp_path)
    active = copy.latest("_churn_active")
    feather.write_feather(feather.read_table(active).slice(1), active)  # the newest day lost a customer
    with pytest.raises(StaleFeaturesError, match=r"customer_usage.*materialize the churn feature views again"):
        latest_features(copy, CHURN)


def test_batch_scores_asset(scored: tuple[LakePaths, dict]) -> None:
    paths, _ = scored
    result = dg.materialize(
        [batch_scores_asset(CHURN)],
        resources={"lakehouse": LakehouseResource(data_root=str(paths.root))},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    [mat] = result.asset_materializations_for_node("churn__batch_scores")
    assert mat.asset_key == dg.AssetKey(["churn", "batch_scores"])
    md = {k: v.value for k, v in mat.metadata.items()}
    stored = pl.read_parquet(paths.batch_scores("churn"))
    assert md["dagster/row_count"] == stored.height
    assert md["positives"] == int(stored["decision"].sum())
    assert md["model_version"] == model_registry.champion(paths, CHURN.name)
    for k in ("score_mean", "score_p50", "score_p90"):
        assert isinstance(md[k], float)
    # The lookup reads the file the asset wrote.
    [(n,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{paths.batch_scores('churn')}')").fetchall()
    assert n == stored.height
