"""Prediction logging: the buffered logger, the service logging its predictions, and the ingestion asset."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.keys import DomainKeys
from lakehouse import io as lake_io
from lakehouse.paths import LakePaths
from lakehouse.serving.prediction_log import PredictionLogger, features_json, log_files, read_prediction_log


def record(n: int, request_id: str = "r", **extra) -> dict:
    return {
        "request_id": request_id,
        "row_index": n,
        "endpoint": "predict_ids",
        "entity_id": str(n),
        "features": '{"a": 1}',
        "model_version": "m:1",
        "score": n / 1000,
        "decision": n % 2 == 0,
        "latency_ms": 1.5,
        **extra,
    }


def wait_for(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_n_records_are_n_rows_after_close(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    logger = PredictionLogger(folder, flush_rows=50, flush_seconds=60)

    def worker(w: int) -> None:
        for i in range(25):
            logger.log([record(i, request_id=f"w{w}-{i}"), record(i + 1000, request_id=f"w{w}-{i}")])

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    logger.close()
    logger.close()  # idempotent
    df = read_prediction_log(folder)
    assert df.height == 8 * 25 * 2
    assert df.select("request_id", "entity_id").unique().height == df.height
    assert df["logged_at"].dtype == pl.Datetime("us", "UTC")
    assert df.schema["entity_id"] == pl.String
    with pytest.raises(RuntimeError):
        logger.log([record(1)])


def test_feature_mappings_are_written_as_json_text(tmp_path: Path) -> None:
    """A record may carry its features as a mapping: encoded at flush, in feature order, like features_json."""
    features = {"plan": "basic", "monthly_price": 9.99, "tenure_days": 12, "usage_trend": None}
    with PredictionLogger(tmp_path, flush_rows=10, flush_seconds=3600) as logger:
        logger.log([record(1, features=features), record(2)])
    written = read_prediction_log(tmp_path).sort("row_index")["features"].to_list()
    assert written == [features_json(features), '{"a": 1}']
    assert json.loads(written[0]) == features and list(json.loads(written[0])) == list(features)


def test_flush_by_size(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path, flush_rows=10, flush_seconds=3600)
    logger.log([record(i) for i in range(4)])
    time.sleep(0.2)
    assert log_files(tmp_path) == []  # under the size, long before the time limit
    logger.log([record(i) for i in range(4, 12)])
    assert wait_for(lambda: len(log_files(tmp_path)) == 1)
    assert read_prediction_log(tmp_path).height == 12
    logger.close()
    assert read_prediction_log(tmp_path).height == 12


def test_flush_by_time(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path, flush_rows=1000, flush_seconds=0.3)
    logger.log([record(1), record(2)])
    assert log_files(tmp_path) == []
    assert wait_for(lambda: len(log_files(tmp_path)) == 1, timeout=3)
    assert read_prediction_log(tmp_path).height == 2
    logger.log([record(3)])
    assert wait_for(lambda: len(log_files(tmp_path)) == 2, timeout=3)
    logger.close()
    assert read_prediction_log(tmp_path).height == 3
    names = [p.name for p in log_files(tmp_path)]
    assert names == sorted(names) and all(n.endswith(".parquet") and "-" in n for n in names)


def test_log_never_writes_and_a_failed_write_is_never_half_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def die_half_way(self, path, **kwargs):
        calls.append(path)
        open(path, "wb").write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", die_half_way)
    logger = PredictionLogger(tmp_path, flush_rows=2, flush_seconds=0.1)
    started = time.perf_counter()
    logger.log([record(1), record(2), record(3)])
    assert time.perf_counter() - started < 0.05  # log() only buffers
    assert wait_for(lambda: len(calls) >= 1)
    assert list(tmp_path.iterdir()) == []  # neither a finished nor a temporary file
    assert logger.pending == 3  # the records are kept for the next attempt
    monkeypatch.undo()
    logger.close()
    assert read_prediction_log(tmp_path).height == 3
    assert all(not p.name.startswith(".") for p in tmp_path.iterdir())


def test_read_empty_or_missing_folder(tmp_path: Path) -> None:
    df = read_prediction_log(tmp_path / "nope")
    assert df.height == 0 and "score" in df.columns


# --- the service -----------------------------------------------------------------------------------


def test_service_logs_every_prediction(lake: LakePaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """N predictions (service class in-process) -> N log rows after its on_shutdown hook.

    Not through ChurnService.to_asgi(): a second ASGI app in one process re-registers BentoML's
    Prometheus metrics (ValueError), and tests/service/test_service.py already builds one.
    """
    import shutil

    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.ml import model_registry
    from lakehouse.ml.candidates import latest_candidate
    from lakehouse.paths import DATA_ROOT_ENV

    if model_registry.champion(lake, CHURN.name) is None:
        model_registry.promote(lake, CHURN.name, latest_candidate(lake, CHURN), "test", action="manual")
    # A private copy of the data root, so the log holds only this test's predictions.
    copy = LakePaths(tmp_path / "data")
    for part in ("bentoml", "registry", "feast"):
        shutil.copytree(lake.root / part, copy.root / part)
    monkeypatch.setenv(DATA_ROOT_ENV, str(copy.root))
    monkeypatch.setenv("BENTOML_HOME", str(copy.root / "bentoml"))
    monkeypatch.delenv("LAKEHOUSE_API_KEY", raising=False)

    from bentos.churn_service import ChurnService
    from lakehouse.serving import scoring

    champion = scoring.load_champion(copy, CHURN.name)
    row = {f: (champion.categories[f][0] if f in champion.categories else 1.0) for f in champion.features}
    ids = [1, 2, 3, 10**9]
    from bentoml.exceptions import InvalidArgument

    service = ChurnService()
    out1 = service.predict_ids(customer_ids=ids)
    out2 = service.predict_features(rows=[row, {**row, "usage_trend": None}, row])
    with pytest.raises(InvalidArgument):
        service.predict_features(rows=[{"bogus": 1}])
    service.model_info()
    service.close_prediction_log()  # what BentoML's shutdown runs (marked @bentoml.on_shutdown)
    assert getattr(ChurnService.inner.close_prediction_log, "__bentoml_shutdown_hook__", False)
    df = read_prediction_log(copy.prediction_log("churn"))
    assert df.height == len(ids) + 3
    by_endpoint = dict(df.group_by("endpoint").len().rows())
    assert by_endpoint == {"predict_ids": 4, "predict_features": 3}
    assert df["request_id"].n_unique() == 2
    ids_log = df.filter(pl.col("endpoint") == "predict_ids").sort("row_index")
    assert ids_log["entity_id"].to_list() == [str(i) for i in ids]
    preds = out1["predictions"]
    assert ids_log["score"].to_list()[:3] == [p.get("score") for p in preds][:3]
    assert ids_log["error"].to_list()[-1] == "unknown entity: no online features"
    assert ids_log["score"].to_list()[-1] is None
    feats = df.filter(pl.col("endpoint") == "predict_features").sort("row_index")
    assert feats["entity_id"].null_count() == 3
    assert feats["score"].to_list() == [p["score"] for p in out2["predictions"]]
    assert '"usage_trend": null' in feats["features"][1]
    assert (df["latency_ms"] > 0).all() and (df["model_version"] == champion.tag).all()


# --- the ingestion asset ----------------------------------------------------------------------------


def test_endpoint_summary_counts_requests_once_for_their_latency() -> None:
    from lakehouse.serving.prediction_log import endpoint_summary, to_frame

    log = to_frame(
        [
            record(0, request_id="a", latency_ms=1.0),
            record(1, request_id="a", latency_ms=1.0),
            record(2, request_id="b", latency_ms=2.0),
            record(3, request_id="c", latency_ms=30.0, error="x"),
            record(4, request_id="d", endpoint="predict_features", latency_ms=7.0),
        ]
    )
    assert endpoint_summary(log) == [
        {
            "endpoint": "predict_features",
            "requests": 1,
            "rows": 1,
            "errors": 0,
            "latency_ms_p50": 7.0,
            "latency_ms_p99": 7.0,
            "latency_ms_max": 7.0,
        },
        {
            "endpoint": "predict_ids",
            "requests": 3,
            "rows": 4,
            "errors": 1,
            "latency_ms_p50": 2.0,
            "latency_ms_p99": 30.0,
            "latency_ms_max": 30.0,
        },
    ]


def test_prediction_log_asset_ingests_new_files(tmp_path: Path) -> None:
    from assets.resources import LakehouseResource
    from assets.serving import prediction_log_asset
    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.serving.prediction_log import prediction_log_table

    paths = LakePaths(tmp_path / "data")
    with PredictionLogger(paths.prediction_log("churn"), flush_seconds=3600) as logger:
        logger.log([record(i, request_id="a") for i in range(5)])
    with PredictionLogger(paths.prediction_log("churn"), flush_seconds=3600) as logger:
        # two rows repeat request a's (a retried write): dropped; one has no score.
        logger.log(
            [
                record(0, request_id="a"),
                record(1, request_id="a"),
                record(7, request_id="b"),
                record(8, request_id="b", score=None, decision=None, error="unknown entity"),
            ]
        )
    lake_io._temp_beside(paths.prediction_log("churn") / "x.parquet").write_bytes(b"PAR1 half")  # litter: ignored

    asset = prediction_log_asset(CHURN)
    assert asset.key == DomainKeys.of(CHURN).prediction_log == dg.AssetKey(["churn", "prediction_log"])
    assert asset.group_names_by_key[asset.key] == "churn_serving"
    resources = {"lakehouse": LakehouseResource(data_root=str(paths.root))}

    def run() -> dict:
        result = dg.materialize([asset], resources=resources)
        assert result.success
        [mat] = result.asset_materializations_for_node(asset.op.name)
        return {k: v.value for k, v in mat.metadata.items()}

    md = run()
    assert md["new_files"] == 2 and md["rows_in"] == 9 and md["duplicates_dropped"] == 2
    assert md["rows_out"] == md["dagster/row_count"] == 7 and md["errors"] == 1
    assert md["score_max"] == pytest.approx(0.007) and md["score_min"] == 0.0
    [endpoint] = md["endpoints"].records
    assert endpoint.data == {
        "endpoint": "predict_ids",
        "requests": "2",
        "rows": "7",
        "errors": "1",
        "latency_ms_p50": "1.5",
        "latency_ms_p99": "1.5",
        "latency_ms_max": "1.5",
    }
    table = pl.read_parquet(prediction_log_table(paths, "churn"))
    assert table.height == 7 and table.select("request_id", "entity_id").unique().height == 7

    md = run()  # nothing new: nothing read
    assert md["new_files"] == 0 and md["rows_in"] == 0 and md["rows_out"] == 7

    with PredictionLogger(paths.prediction_log("churn"), flush_seconds=3600) as logger:
        logger.log([record(9, request_id="c")])
    md = run()
    assert md["new_files"] == 1 and md["rows_in"] == 1 and md["rows_before"] == 7 and md["rows_out"] == 8
    assert pl.read_parquet(prediction_log_table(paths, "churn")).height == 8
