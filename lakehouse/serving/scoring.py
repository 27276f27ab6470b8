"""Scoring with a domain's champion model: the library in-process callers use (model as a dependency).

The BentoML service in bentos/ is a thin HTTP layer over these functions, so a batch job, a notebook
and the service score the same frame identically. No BentoML or Dagster import here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import polars as pl

from lakehouse.ml import model_registry
from lakehouse.ml.training import TrainedModel, load_trained_model, model_matrix
from lakehouse.paths import LakePaths


class NoChampionError(model_registry.RegistryError):
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
    return champion_model(*champion_text(paths, domain))


def champion_text(paths: LakePaths, domain: str) -> tuple[str, str, dict[str, Any]]:
    """The champion's tag, LightGBM text (SHA-checked) and metadata, unparsed; NoChampionError if none."""
    tag = model_registry.champion(paths, domain)
    if tag is None:
        raise NoChampionError(
            f"domain {domain!r} has no champion model under {paths.root}; "
            f"train and promote one first (the registry's promote/gate)"
        )
    return model_registry.load_domain_model(paths, domain, tag)


def champion_model(tag: str, text: str, meta: dict[str, Any]) -> ChampionModel:
    """A ChampionModel from a model's LightGBM text and metadata (already SHA-checked by the registry)."""
    missing = [k for k in ("features", "categories", "threshold", "feature_service") if meta.get(k) is None]
    if missing:
        raise model_registry.RegistryError(f"{tag}: metadata lacks {missing}; cannot serve it")
    threshold = meta["threshold"]
    threshold = float(threshold["threshold"] if isinstance(threshold, dict) else threshold)
    model = load_trained_model(text, meta["features"], meta["categories"], meta.get("params"), meta["model_sha256"])
    return ChampionModel(
        tag=tag,
        model=model,
        threshold=threshold,
        features=list(meta["features"]),
        feature_service=str(meta["feature_service"]),
        metadata=meta,
    )


class PinnedChampion:
    """One model version for the service's whole life (a bento pinned to a version)."""

    def __init__(self, champion: ChampionModel) -> None:
        self._champion = champion

    def current(self) -> ChampionModel:
        return self._champion


class ChampionWatcher:
    """The current champion, reloaded when the champion pointer changes; callers keep the model they took."""

    def __init__(
        self, paths: LakePaths, domain: str, on_switch: Callable[[ChampionModel, ChampionModel], None] | None = None
    ) -> None:
        self.paths, self.domain, self.on_switch = paths, domain, on_switch
        self._pointer = paths.champion_pointer(domain)
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
                    logging.getLogger(__name__).exception(
                        "keeping %s: the new champion failed to load", self._champion.tag
                    )
                    self._stamp = stamp
                    return self._champion
                old, self._champion, self._stamp = self._champion, new, stamp
                if self.on_switch and new.tag != old.tag:
                    self.on_switch(old, new)
            return self._champion


class OnDemandModels:
    """Registered model versions loaded (SHA-checked) when a request first names one; the last `size` kept.

    The model-on-demand serving pattern: a challenger, a retired champion or any audited version
    answers beside the champion without a deployment of its own.
    """

    def __init__(self, paths: LakePaths, domain: str, size: int = 4) -> None:
        self.paths, self.domain, self.size = paths, domain, size
        self._models: OrderedDict[str, ChampionModel] = OrderedDict()  # by tag, least recently used first
        self._tags: dict[str, str] = {}  # what requests named (a version, a prefix, a tag) -> tag
        self._lock = threading.Lock()

    def get(self, tag_or_version: str) -> ChampionModel:
        """The model with this tag or version (prefix); model_registry.RegistryError if the domain has none such."""
        with self._lock:
            model = self._models.get(self._tags.get(tag_or_version, ""))
            if model is not None:
                self._models.move_to_end(model.tag)
                return model
        # Loaded outside the lock: other versions keep answering meanwhile.
        loaded = champion_model(*model_registry.load_domain_model(self.paths, self.domain, tag_or_version))
        with self._lock:
            model = self._models.setdefault(loaded.tag, loaded)  # the same version named another way: one copy
            self._models.move_to_end(model.tag)
            self._tags[tag_or_version] = model.tag
            while len(self._models) > self.size:
                evicted, _ = self._models.popitem(last=False)
                self._tags = {name: tag for name, tag in self._tags.items() if tag != evicted}
        if model is loaded:
            logging.getLogger(__name__).info("loaded %s on demand", model.tag)
        return model

    def loaded(self) -> list[str]:
        """The tags held, least recently used first."""
        with self._lock:
            return [model.tag for model in self._models.values()]


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
    """Positive-class probabilities: Booster.predict on a float matrix, categoricals as codes of the model's category lists.

    The same numbers as TrainedModel.predict (a pandas frame with categoricals), which LightGBM converts
    to exactly this matrix, at about 1 ms a call: most of a single-entity request. Unknown and null
    categories become NaN (missing), as there. If the booster's own category lists differ from the
    metadata's, LightGBM's mapping is used instead.
    """
    model = champion.model
    if champion.category_codes is None:
        return model.predict(frame)
    # One select builds the row-major matrix (a polars operation per column cost 3x as much).
    matrix = frame.select(
        pl.col(f)
        .cast(pl.String)
        .replace_strict(model.categories[f], range(len(model.categories[f])), default=None, return_dtype=pl.Float64)
        if f in model.categories
        else pl.col(f).cast(pl.Float64)
        for f in model.features
    ).to_numpy(order="c")
    return model.booster.predict(matrix, num_iteration=model.best_iteration, num_threads=model.num_threads)


def predict_rows(champion: ChampionModel, rows: list[dict[str, Any]]) -> np.ndarray:
    """predict() for a few row dicts without building a frame: the per-request path (same matrix, same numbers)."""
    codes, model = champion.category_codes, champion.model
    if codes is None:
        return predict(champion, _frame(champion, {f: [row[f] for row in rows] for f in champion.features}))
    nan = float("nan")
    matrix = np.array(
        [
            [
                nan if row[f] is None else codes[f].get(str(row[f]), nan) if f in codes else float(row[f])
                for f in model.features
            ]
            for row in rows
        ],
        dtype=np.float64,
    )
    # One row on an OpenMP team of all cores cost 2-40x one thread's time on the shared cores.
    return model.booster.predict(matrix, num_iteration=model.best_iteration, num_threads=model.num_threads)


def _results(champion: ChampionModel, scores: np.ndarray) -> list[dict[str, Any]]:
    return [
        {"score": float(s), "decision": bool(s >= champion.threshold), "model_version": champion.tag} for s in scores
    ]


def score(champion: ChampionModel, frame: pl.DataFrame) -> list[dict[str, Any]]:
    """One dict per row: score (positive-class probability), decision (score >= threshold) and model_version."""
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
    contrib = np.asarray(
        model.booster.predict(
            matrix, num_iteration=model.best_iteration, pred_contrib=True, num_threads=model.num_threads
        )
    )[0]
    names = model.booster.feature_name()
    if list(names) != list(model.features):
        raise ValueError(f"{champion.tag}: booster features {names} differ from metadata features {model.features}")
    values = frame_row.row(0, named=True)
    order = sorted(range(len(names)), key=lambda i: abs(contrib[i]), reverse=True)[: max(top, 0)]
    result = score(champion, frame_row)[0]
    return {
        **result,
        "space": "log-odds",
        "bias": float(contrib[-1]),
        "raw_score": float(contrib.sum()),
        "contributions": [
            {"feature": names[i], "value": values[names[i]], "contribution": float(contrib[i])} for i in order
        ],
    }


@dataclass(frozen=True)
class _OnlineReader:
    """A champion's feature service resolved for Feast's online store: its views and the features read from each."""

    key_type: Any  # Feast ValueType of the entity key
    views: list[tuple[Any, tuple[str, ...], dict[str, Any]]]  # (feature view, the champion's features in it, types)
    scalar: frozenset[str]  # features of a plain scalar type: their proto field is the value, as Feast returns it
    expires: float  # time.monotonic() after which the registry is read again


# Value proto fields that feast_value_type_to_python_type returns as they are, for features of these ValueTypes.
_SCALAR_FIELDS = frozenset({"int32_val", "int64_val", "float_val", "double_val", "string_val", "bool_val"})
_SCALAR_TYPES = frozenset({"INT32", "INT64", "FLOAT", "DOUBLE", "STRING", "BOOL"})

# Per FeatureStore: one Feast provider (its online store and connection) and a reader per champion tag.
_READERS: weakref.WeakKeyDictionary[Any, tuple[Any, dict[str, _OnlineReader]]] = weakref.WeakKeyDictionary()


def _online_reader(store: Any, champion: ChampionModel, entity_key: str) -> tuple[Any, _OnlineReader]:
    """The store's provider and the champion's reader, resolved once per champion and registry cache ttl."""
    # get_online_features resolves the feature service and builds response protos on every call: more
    # time than the online read itself. Expiring with the registry's cache ttl (0: never, as in Feast)
    # shows registry changes as soon as Feast itself would.
    if store not in _READERS:
        from feast.infra.provider import get_provider

        _READERS[store] = (get_provider(store.config), {})
    provider, readers = _READERS[store]
    reader = readers.get(champion.tag)
    if reader is not None and time.monotonic() < reader.expires:
        return provider, reader
    service = store.get_feature_service(champion.feature_service, allow_cache=True)
    wanted, views = set(champion.features), []
    for projection in service.feature_view_projections:
        if projection.name_alias or projection.join_key_map or projection.version_tag is not None:
            raise model_registry.RegistryError(
                f"feature service {champion.feature_service}: view {projection.name} is "
                "aliased, key-mapped or versioned; online_lookup reads plain views only"
            )
        view = store.get_feature_view(projection.name, allow_registry_cache=True)
        if [c.name for c in view.entity_columns] != [entity_key]:
            raise model_registry.RegistryError(f"feature view {view.name} is not keyed by {entity_key} alone")
        used = [f for f in projection.features if f.name in wanted]
        if used:
            views.append((view, tuple(f.name for f in used), {f.name: f.dtype.to_value_type() for f in used}))
    lacking = wanted - {name for _, names, _ in views for name in names}
    if lacking:
        raise model_registry.RegistryError(
            f"feature service {champion.feature_service} does not serve {sorted(lacking)}"
        )
    ttl = store.config.registry.cache_ttl_seconds
    scalar = frozenset(name for _, _, types in views for name, kind in types.items() if kind.name in _SCALAR_TYPES)
    reader = _OnlineReader(
        key_type=views[0][0].entity_columns[0].dtype.to_value_type(),
        views=views,
        scalar=scalar,
        expires=time.monotonic() + ttl if ttl > 0 else math.inf,
    )
    readers[champion.tag] = reader
    return provider, reader


def online_lookup(
    store: Any, champion: ChampionModel, entity_key: str, entity_ids: list[Any]
) -> tuple[list[dict[str, Any]], list[dict[str, float | None]]]:
    """Per entity: the champion's online feature values and their event times (epoch seconds; None if absent)."""
    # The provider's online_read, one call per feature view, works with any configured online store; the
    # lakehouse stores (sqlite, and Redis in the production profile) read all views at once. Values are
    # converted as get_online_features converts them.
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

    provider, reader = _online_reader(store, champion, entity_key)
    keys = [
        EntityKeyProto(join_keys=[entity_key], entity_values=[value])
        for value in python_values_to_proto_values(entity_ids, reader.key_type)
    ]
    rows = [dict.fromkeys(champion.features) for _ in entity_ids]
    times: list[dict[str, float | None]] = [dict.fromkeys(champion.features) for _ in entity_ids]
    read_views = getattr(getattr(provider, "online_store", None), "online_read_views", None)
    if read_views is not None:  # the lakehouse stores: every view in one statement (sqlite) or HMGET (Redis)
        reads = read_views(store.config, [view for view, _, _ in reader.views], keys)
    else:
        # A fresh list each call: Feast's Redis online_read appends its timestamp key to the list it is given
        # (feast-dev/feast#6841, still in 0.67), which made a cached list grow by one name per lookup.
        reads = [provider.online_read(store.config, view, keys, list(names)) for view, names, _ in reader.views]
    scalar = reader.scalar
    for (_, names, types), read in zip(reader.views, reads):
        for row, row_times, (event_time, values) in zip(rows, times, read):
            if values is None:
                continue
            at = event_time.timestamp()
            for name in names:
                proto = values.get(name)
                if proto is None:
                    continue
                kind = proto.WhichOneof("val")
                # A plain scalar is its proto field, as Feast returns it; anything else takes Feast's conversion.
                value = (
                    getattr(proto, kind)
                    if kind in _SCALAR_FIELDS and name in scalar
                    else feast_value_type_to_python_type(proto, types[name])
                )
                if value is not None:
                    row[name], row_times[name] = value, at
    return rows, times


def online_rows(store: Any, champion: ChampionModel, entity_key: str, entity_ids: list[int]) -> list[dict[str, Any]]:
    """Online feature values per entity through the champion's Feast feature service (None where absent)."""
    return online_lookup(store, champion, entity_key, entity_ids)[0]


def freshness(times: dict[str, float | None], ttl: dict[str, float], now: float) -> dict[str, Any]:
    """The oldest feature time of one entity and the features older than their view's ttl (stale); all in seconds."""
    present = [t for t in times.values() if t is not None]
    stale = sorted(f for f, t in times.items() if t is not None and now - t > ttl[f])
    oldest = min(present) if present else None
    return {
        "features_as_of": datetime.fromtimestamp(oldest, UTC).isoformat() if oldest is not None else None,
        "feature_age_hours": round((now - oldest) / 3600, 1) if oldest is not None else None,
        "stale": bool(stale),
        "stale_features": stale,
    }


def score_rows(
    champion: ChampionModel, entity_key: str, entity_ids: list[int], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
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
