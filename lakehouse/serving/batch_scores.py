"""Batch scoring (the precompute serving pattern): score every active entity once, look scores up later.

latest_features reads, for every entity active on the spine's newest day, the newest row of each
feature view (the values the online store holds after materialization); batch_score scores them with
the champion through lakehouse.serving.scoring, exactly as the service does, and writes one Parquet table
(plus a copy per feature day under score_history, for live performance once labels arrive);
publish_online writes them into the online store's scores view, where precomputed_scores looks
entities up without loading or running the model.
No BentoML or Dagster import here.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import feather

from lakehouse.declarations.domain import Domain
from lakehouse.io import copy_file_atomic, write_parquet_atomic
from lakehouse.lake.feature_tables import recent_features
from lakehouse.ml.training import from_iso
from lakehouse.paths import LakePaths
from lakehouse.serving import scoring


class StaleFeaturesError(RuntimeError):
    """A feature view's latest-row table does not match the spine's newest entities (rebuild the views)."""


def latest_features(paths: LakePaths, domain: Domain) -> pl.DataFrame:
    """One row per entity present on the spine's newest day: the latest row of every feature view.

    Columns: the entity key, event_timestamp (the newest of the views' event times for the entity)
    and every feature of every view. An entity a view has no row for gets nulls for that view.
    """
    key = domain.entity_key
    files = {name: paths.latest(name) for name in (f"_{domain.name}_active", *(v.name for v in domain.feature_views))}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(
            f"batch scoring needs the features step's latest-row tables; missing {missing} "
            f"(materialize the {domain.name} feature assets)"
        )
    # The features step writes every table in the active entities' order, so the views sit side by side
    # without a join; Arrow IPC is read without decoding (polars would add a plan per operation here).
    tables = {name: feather.read_table(path) for name, path in files.items()}
    entities = tables.pop(f"_{domain.name}_active").column(key)
    stale = [name for name, table in tables.items() if not table.column(key).equals(entities)]
    if stale:
        raise StaleFeaturesError(
            f"the latest-row tables of {stale} were built for other entities than the "
            f"{domain.name} spine's newest day; materialize the {domain.name} feature views again"
        )
    stamps = pc.max_element_wise(*(table.column("event_timestamp") for table in tables.values()))
    columns = {key: entities, "event_timestamp": stamps}
    for view in domain.feature_views:
        columns.update((f.name, tables[view.name].column(f.name)) for f in view.features)
    return pl.from_arrow(pa.table(columns))


def _stats(frame: pl.DataFrame) -> dict[str, Any]:
    if frame.is_empty():
        return {"score_mean": None, "score_min": None, "score_p50": None, "score_p90": None, "score_max": None}
    s = frame["score"]
    return {
        "score_mean": float(s.mean()),
        "score_min": float(s.min()),
        "score_p50": float(s.quantile(0.5)),
        "score_p90": float(s.quantile(0.9)),
        "score_max": float(s.max()),
    }


def batch_score(paths: LakePaths, domain: Domain) -> dict[str, Any]:
    """Score every active entity with the domain's champion; write batch_scores.parquet atomically.

    Raises scoring.NoChampionError when the domain has no champion. Returns the path, row and
    positive counts, the model version and threshold, score statistics and timings (load, score, write).
    """
    key = domain.entity_key
    started = time.perf_counter()
    tag, text, meta = scoring.champion_text(paths, domain.name)
    with ThreadPoolExecutor(1) as pool:
        # LightGBM parses the model text without holding the GIL, so the features are read meanwhile.
        parsing = pool.submit(scoring.champion_model, tag, text, meta)
        features = latest_features(paths, domain)
        champion = parsing.result()
    scored_at = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, like the lake's other timestamps
    loaded = time.perf_counter()
    # The same scores as scoring.score (the service's path), kept as arrays: no dict per row.
    scores = pl.Series("score", scoring.predict(champion, features), dtype=pl.Float64)
    scored = time.perf_counter()
    out = features.select(key, "event_timestamp").with_columns(
        scores,
        decision=scores >= champion.threshold,
        model_version=pl.lit(champion.tag, dtype=pl.String),
        scored_at=pl.lit(scored_at, dtype=pl.Datetime("us")),
    )
    path = write_parquet_atomic(out, paths.batch_scores(domain.name))
    cases = score_new_cases(paths, domain, champion) if domain.grain == "event" else None
    if out.height and cases is None:
        # One file per feature day, rewritten when that day is scored again (by a new champion, say);
        # the same bytes as the table just written, so copied rather than encoded again.
        day = out["event_timestamp"].max().date()
        copy_file_atomic(path, paths.score_history(domain.name) / f"{day.isoformat()}.parquet")
    written = time.perf_counter()
    return {
        "path": path,
        "rows": out.height,
        "positives": int(out["decision"].sum()) if out.height else 0,
        "positive_rate": float(out["decision"].cast(pl.Float64).mean()) if out.height else None,
        "threshold": champion.threshold,
        "model_version": champion.tag,
        "features_as_of": None if out.is_empty() else out["event_timestamp"].max(),
        "scored_at": scored_at,
        "new_cases": cases,  # event grain: cases scored for the first time (None for snapshot domains)
        "load_seconds": loaded - started,  # the champion and the features, read side by side
        "score_seconds": scored - loaded,
        "write_seconds": written - scored,
        **_stats(out),
    }


def score_new_cases(paths: LakePaths, domain: Domain, champion: scoring.ChampionModel) -> int:
    """Event grain: score every case not scored yet, once, and keep it with its key and the model version.

    A case is a feature row (entity, event time). Cases up to the end of the champion's training data are
    not scored: they are what it learned from. Each call adds one file under score_history; returns the count.
    """
    key = domain.entity_key
    folder = paths.score_history(domain.name)
    cases = recent_features(paths, domain, days=None)
    test_window = champion.metadata.get("split", {}).get("test", "")
    if ".." in test_window:
        cases = cases.filter(pl.col("event_timestamp") > from_iso(test_window.split("..", 1)[1]))
    done = sorted(folder.glob("*.parquet")) if folder.exists() else []
    if done and cases.height:
        seen = pl.concat([pl.read_parquet(f, columns=[key, "event_timestamp"]) for f in done], how="vertical_relaxed")
        cases = cases.join(seen, on=[key, "event_timestamp"], how="anti", nulls_equal=True)
    if cases.is_empty():
        return 0
    scores = pl.Series("score", scoring.predict(champion, cases), dtype=pl.Float64)
    scored_at = datetime.now(UTC).replace(tzinfo=None)
    out = cases.select(key, "event_timestamp").with_columns(
        scores,
        decision=scores >= champion.threshold,
        model_version=pl.lit(champion.tag, dtype=pl.String),
        scored_at=pl.lit(scored_at, dtype=pl.Datetime("us")),
    )
    write_parquet_atomic(out, folder / f"cases-{scored_at:%Y%m%dT%H%M%S%f}.parquet")
    return out.height


def publish_online(store: Any, domain: Domain, paths: LakePaths) -> int:
    """Write the batch scores into the online store's scores view (Feast's write_to_online_store); return rows."""
    from lakehouse.feature_store.feast_objects import apply_definitions, scores_view_name

    if scores_view_name(domain) not in {v.name for v in store.list_feature_views()}:
        apply_definitions(store, domain, paths)  # a registry applied before the scores view existed
    frame = pl.read_parquet(
        paths.batch_scores(domain.name),
        columns=[domain.entity_key, "event_timestamp", "score", "decision", "model_version"],
    )
    if frame.height:
        store.write_to_online_store(scores_view_name(domain), frame.to_pandas())
    return frame.height


def precomputed_scores(store: Any, domain: Domain, entity_ids: list[int]) -> list[dict[str, Any] | None]:
    """The precomputed score of each entity from the online store (no model is loaded or run); None if none."""
    from lakehouse.feature_store.feast_objects import scores_view_name

    view = scores_view_name(domain)
    data = store.get_online_features(
        features=[f"{view}:{f}" for f in ("score", "decision", "model_version")],
        entity_rows=[{domain.entity_key: i} for i in entity_ids],
    ).to_dict(include_event_timestamps=True)
    out: list[dict[str, Any] | None] = []
    for n, entity_id in enumerate(entity_ids):
        if data["score"][n] is None:
            out.append(None)
            continue
        as_of = datetime.fromtimestamp(data["score__ts"][n], UTC)
        out.append(
            {
                domain.entity_key: entity_id,
                "score": data["score"][n],
                "decision": data["decision"][n],
                "model_version": data["model_version"][n],
                "features_as_of": as_of.isoformat(),
            }
        )
    return out
