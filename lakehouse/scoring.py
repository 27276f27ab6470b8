"""Scoring with a domain's champion model: the library in-process callers use (model as a dependency).

The BentoML service in bentos/ is a thin HTTP layer over these functions, so a batch job, a notebook
and the service score the same frame identically. No BentoML or Dagster import here.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from lakehouse import registry
from lakehouse.paths import LakePaths
from lakehouse.training import TrainedModel, load_trained_model, model_matrix


class NoChampionError(registry.RegistryError):
    """The domain has no champion model yet, so there is nothing to serve."""


class FeatureInputError(ValueError):
    """Caller-supplied feature rows that do not match the champion's features (a client error)."""


@dataclass
class ChampionModel:
    """A domain's champion model, loaded and SHA-checked, with what scoring needs beside the booster."""

    tag: str
    model: TrainedModel
    threshold: float
    features: list[str]
    feature_service: str
    metadata: dict[str, Any] = field(repr=False)

    @property
    def categories(self) -> dict[str, list[str]]:
        return self.model.categories

    @cached_property
    def category_codes(self) -> dict[str, dict[str, float]] | None:
        """Per categorical feature, value -> the code LightGBM was trained with; None if the booster disagrees."""
        model = self.model
        categorical = [f for f in model.features if f in model.categories]
        if model.booster.pandas_categorical != [model.categories[f] for f in categorical]:
            return None  # trust LightGBM's own mapping (TrainedModel.predict) instead
        return {f: {value: float(code) for code, value in enumerate(model.categories[f])} for f in categorical}


def load_champion(paths: LakePaths, domain: str) -> ChampionModel:
    """The domain's champion, its model file checked against the recorded SHA-256 (ModelIntegrityError if not)."""
    tag = registry.champion(paths, domain)
    if tag is None:
        raise NoChampionError(f"domain {domain!r} has no champion model under {paths.root}; "
                              f"train and promote one first (the registry's promote/gate)")
    return champion_model(tag, *registry.load_model_text(paths, tag))


def champion_model(tag: str, text: str, meta: dict[str, Any]) -> ChampionModel:
    """A ChampionModel from a model's LightGBM text and metadata (already SHA-checked by the registry)."""
    missing = [k for k in ("features", "categories", "threshold", "feature_service") if meta.get(k) is None]
    if missing:
        raise registry.RegistryError(f"{tag}: metadata lacks {missing}; cannot serve it")
    threshold = meta["threshold"]
    threshold = float(threshold["threshold"] if isinstance(threshold, dict) else threshold)
    model = load_trained_model(text, meta["features"], meta["categories"], meta.get("params"))
    return ChampionModel(tag=tag, model=model, threshold=threshold, features=list(meta["features"]),
                         feature_service=str(meta["feature_service"]), metadata=meta)


class PinnedChampion:
    """One model version for the service's whole life (a bento pinned to a version)."""

    def __init__(self, champion: ChampionModel) -> None:
        self._champion = champion

    def current(self) -> ChampionModel:
        return self._champion


class ChampionWatcher:
    """The current champion, reloaded when the champion pointer changes; callers keep the model they took."""

    def __init__(self, paths: LakePaths, domain: str,
                 on_switch: Callable[[ChampionModel, ChampionModel], None] | None = None) -> None:
        self.paths, self.domain, self.on_switch = paths, domain, on_switch
        self._pointer = paths.root / "registry" / f"{domain}.json"
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._champion = load_champion(paths, domain)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self._pointer.stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> ChampionModel:
        """The champion to score this request with (a stat() per call; a reload only after a change)."""
        stamp = self._stat()
        if stamp == self._stamp:
            return self._champion
        with self._lock:
            if stamp != self._stamp:
                try:
                    new = load_champion(self.paths, self.domain)
                except Exception:
                    # A broken new champion must not take a serving model down: keep the loaded one.
                    logging.getLogger(__name__).exception("keeping %s: the new champion failed to load",
                                                          self._champion.tag)
                    self._stamp = stamp
                    return self._champion
                old, self._champion, self._stamp = self._champion, new, stamp
                if self.on_switch and new.tag != old.tag:
                    self.on_switch(old, new)
            return self._champion


def features_frame(champion: ChampionModel, records: list[dict[str, Any]]) -> pl.DataFrame:
    """A frame of the champion's features from row dicts: categoricals as strings, numerics as Float64.

    Values must be given for every feature (None allowed: LightGBM treats it as missing); unknown
    names, missing names, wrong kinds, unknown categories and NaN/inf raise FeatureInputError.
    """
    wanted = set(champion.features)
    problems: list[str] = []
    for i, row in enumerate(records):
        unknown = sorted(set(row) - wanted)
        missing = [f for f in champion.features if f not in row]
        if unknown:
            problems.append(f"row {i}: unknown features {unknown}")
        if missing:
            problems.append(f"row {i}: missing features {missing}")
        for f in champion.features:
            v = row.get(f)
            if v is None:
                continue
            if f in champion.categories:
                if not isinstance(v, str):
                    problems.append(f"row {i}: {f} must be a string, got {type(v).__name__}")
                elif v not in champion.categories[f]:
                    problems.append(f"row {i}: {f}={v!r} is not one of {champion.categories[f]}")
            elif isinstance(v, bool) or not isinstance(v, (int, float)):
                problems.append(f"row {i}: {f} must be a number, got {type(v).__name__}")
            elif not math.isfinite(v):
                problems.append(f"row {i}: {f} must be finite, got {v}")
    if problems:
        raise FeatureInputError("; ".join(problems))
    return _frame(champion, {f: [row.get(f) for row in records] for f in champion.features})


def _frame(champion: ChampionModel, columns: dict[str, list[Any]]) -> pl.DataFrame:
    series = []
    for f in champion.features:
        dtype = pl.String() if f in champion.categories else pl.Float64()
        values = [None if v is None else (str(v) if f in champion.categories else float(v)) for v in columns[f]]
        series.append(pl.Series(f, values, dtype=dtype))
    return pl.DataFrame(series)


def predict(champion: ChampionModel, frame: pl.DataFrame) -> np.ndarray:
    """Churn probabilities: Booster.predict on a float matrix, categoricals as codes of the model's category lists.

    The same numbers as TrainedModel.predict (a pandas frame with categoricals), which LightGBM converts
    to exactly this matrix, at about 1 ms a call: most of a single-customer request. Unknown and null
    categories become NaN (missing), as there. If the booster's own category lists differ from the
    metadata's, LightGBM's mapping is used instead.
    """
    model = champion.model
    if champion.category_codes is None:
        return model.predict(frame)
    columns = []
    for f in model.features:
        if f in model.categories:
            codes = list(range(len(model.categories[f])))
            columns.append(frame[f].cast(pl.String).replace_strict(model.categories[f], codes, default=None,
                                                                   return_dtype=pl.Float64).to_numpy())
        else:
            columns.append(frame[f].cast(pl.Float64).to_numpy())
    return model.booster.predict(np.column_stack(columns), num_iteration=model.best_iteration)


def predict_rows(champion: ChampionModel, rows: list[dict[str, Any]]) -> np.ndarray:
    """predict() for a few row dicts without building a frame: the per-request path (same matrix, same numbers)."""
    codes, model = champion.category_codes, champion.model
    if codes is None:
        return predict(champion, _frame(champion, {f: [row[f] for row in rows] for f in champion.features}))
    nan = float("nan")
    matrix = np.array([[nan if row[f] is None else codes[f].get(str(row[f]), nan) if f in codes else float(row[f])
                        for f in model.features] for row in rows], dtype=np.float64)
    return model.booster.predict(matrix, num_iteration=model.best_iteration)


def _results(champion: ChampionModel, scores: np.ndarray) -> list[dict[str, Any]]:
    return [{"score": float(s), "decision": bool(s >= champion.threshold), "model_version": champion.tag}
            for s in scores]


def score(champion: ChampionModel, frame: pl.DataFrame) -> list[dict[str, Any]]:
    """One dict per row: score (churn probability), decision (score >= threshold) and model_version."""
    return _results(champion, predict(champion, frame))


def explain(champion: ChampionModel, frame_row: pl.DataFrame, top: int = 5) -> dict[str, Any]:
    """LightGBM's own SHAP contributions (pred_contrib=True) for one row, in log-odds space.

    contributions: the `top` features by absolute contribution, each with its value; bias: the
    expected raw score. bias + the sum of all contributions equals the row's raw score (logit).
    """
    if frame_row.height != 1:
        raise ValueError(f"explain takes exactly one row, got {frame_row.height}")
    model = champion.model
    matrix = model_matrix(frame_row, model.features, model.categories)
    contrib = np.asarray(model.booster.predict(matrix, num_iteration=model.best_iteration, pred_contrib=True))[0]
    names = model.booster.feature_name()
    if list(names) != list(model.features):
        raise ValueError(f"{champion.tag}: booster features {names} differ from metadata features {model.features}")
    values = frame_row.row(0, named=True)
    order = sorted(range(len(names)), key=lambda i: abs(contrib[i]), reverse=True)[:max(top, 0)]
    result = score(champion, frame_row)[0]
    return {
        **result,
        "space": "log-odds",
        "bias": float(contrib[-1]),
        "raw_score": float(contrib.sum()),
        "contributions": [{"feature": names[i], "value": values[names[i]], "contribution": float(contrib[i])}
                          for i in order],
    }


_SERVICES: weakref.WeakKeyDictionary[Any, dict[str, tuple[Any, Any]]] = weakref.WeakKeyDictionary()


def _feature_service(store: Any, name: str) -> Any:
    """The store's FeatureService object, built once per registry refresh.

    store.get_feature_service(name) re-reads registry.db (allow_cache=False), and the new registry
    timestamp also clears Feast's feature-resolution cache: each lookup then re-resolved the service,
    about 10 ms. With allow_cache it still rebuilds the object from protobuf (typeguard-checked, about
    1.5 ms), so it is kept here until the registry Feast serves from is refreshed (its cache ttl).
    """
    stamp = getattr(store.registry, "cached_registry_proto_created", None)
    cached = _SERVICES.setdefault(store, {}).get(name)
    if cached is not None and stamp is not None and cached[0] == stamp:
        return cached[1]
    service = store.get_feature_service(name, allow_cache=True)
    _SERVICES[store][name] = (getattr(store.registry, "cached_registry_proto_created", None), service)
    return service


def online_lookup(store: Any, champion: ChampionModel, entity_key: str, entity_ids: list[int]
                  ) -> tuple[list[dict[str, Any]], list[dict[str, datetime | None]]]:
    """One Feast online lookup through the champion's feature service: values and their event times per entity."""
    service = _feature_service(store, champion.feature_service)
    data = store.get_online_features(features=service, entity_rows=[{entity_key: i} for i in entity_ids]
                                     ).to_dict(include_event_timestamps=True)
    lacking = [f for f in champion.features if f not in data]
    if lacking:
        raise registry.RegistryError(f"feature service {champion.feature_service} does not serve {lacking}")
    rows = [{f: data[f][n] for f in champion.features} for n in range(len(entity_ids))]
    times = [{f: (datetime.fromtimestamp(data[f + "__ts"][n], UTC) if data[f][n] is not None else None)
              for f in champion.features} for n in range(len(entity_ids))]
    return rows, times


def online_rows(store: Any, champion: ChampionModel, entity_key: str, entity_ids: list[int]) -> list[dict[str, Any]]:
    """Online feature values per entity through the champion's Feast feature service (None where absent)."""
    return online_lookup(store, champion, entity_key, entity_ids)[0]


def freshness(times: dict[str, datetime | None], ttl: dict[str, timedelta], now: datetime) -> dict[str, Any]:
    """The oldest feature time of one entity and the features older than their view's ttl (stale)."""
    present = [t for t in times.values() if t is not None]
    stale = sorted(f for f, t in times.items() if t is not None and now - t > ttl[f])
    oldest = min(present) if present else None
    return {"features_as_of": oldest.isoformat() if oldest else None,
            "feature_age_hours": round((now - oldest).total_seconds() / 3600, 1) if oldest else None,
            "stale": bool(stale), "stale_features": stale}


def score_rows(champion: ChampionModel, entity_key: str, entity_ids: list[int],
               rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score entities on feature rows fetched from the online store; an all-None row is an unknown entity (an error, not a default)."""
    known = [n for n, row in enumerate(rows) if any(v is not None for v in row.values())]
    scored: dict[int, dict[str, Any]] = {}
    if known:
        for n, result in zip(known, _results(champion, predict_rows(champion, [rows[n] for n in known]))):
            scored[n] = result
    out = []
    for n, entity_id in enumerate(entity_ids):
        if n in scored:
            missing = [f for f in champion.features if rows[n][f] is None]
            out.append({entity_key: entity_id, **scored[n], "missing_features": missing})
        else:
            out.append({entity_key: entity_id, "error": "unknown entity: no online features"})
    return out


def online_frame(store: Any, champion: ChampionModel, entity_key: str, entity_id: int) -> pl.DataFrame | None:
    """One entity's online features as a one-row frame, or None if the online store knows nothing of it."""
    row = online_rows(store, champion, entity_key, [entity_id])[0]
    if all(v is None for v in row.values()):
        return None
    return _frame(champion, {f: [row[f]] for f in champion.features})
