"""A domain's prediction service as a plain class: what the BentoML service in bentos/ answers with.

PredictionService holds the state of a running service: the champion (followed through the champion
pointer, or pinned to one version), the other registered versions requests name (loaded on demand),
the Feast feature store and the prediction log. Its methods take plain values and return the JSON
answers as dicts. A request it cannot answer raises a RequestError: InvalidRequest, NotFound or
Unavailable, which bentos/service.py turns into a 400, 404 or 503. Scoring itself is
lakehouse.serving.scoring. No BentoML or Dagster import here.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from feast.errors import FeatureServiceNotFoundException, FeatureViewNotFoundException
from redis import RedisError

from lakehouse.declarations.domain import Domain
from lakehouse.feature_store.feast_objects import feature_store
from lakehouse.ml import model_registry
from lakehouse.paths import LakePaths
from lakehouse.serving import scoring
from lakehouse.serving.batch_scores import precomputed_scores
from lakehouse.serving.prediction_log import PredictionLogger

logger = logging.getLogger(__name__)

# An online store that cannot be reached or read (sqlite, Redis, the network): the service is unavailable.
ONLINE_STORE_ERRORS = (OSError, sqlite3.Error, RedisError)


class RequestError(Exception):
    """A request the service cannot answer; each kind has its HTTP status in bentos/service.py."""


class InvalidRequest(RequestError):
    """A client error (400): feature rows that do not fit the model, a version a pinned service does not hold."""


class NotFound(RequestError):
    """What the request names does not exist (404): a model version, an entity, a version's feature service."""


class Unavailable(RequestError):
    """The service cannot answer now (503): the online store does not answer, a stored model is corrupt,
    no batch scores are published yet."""


def stored_champion(stored: Any) -> scoring.ChampionModel:
    """The model of a BentoML stored model in hand (a bento's own), SHA-checked (ModelIntegrityError if not)."""
    return scoring.champion_model(str(stored.tag), *model_registry.read_model(stored))


class PredictionService:
    """A domain's champion behind the service's requests: online lookups, scoring, explanations, the log.

    Without `pinned` the champion pointer is followed: a new champion answers from the next request on,
    and any other registered version answers when a request names it. With `pinned` (a bento's model)
    only that version answers. Raises NoChampionError or ModelIntegrityError: no service on a bad model.
    """

    def __init__(self, domain: Domain, paths: LakePaths, pinned: scoring.ChampionModel | None = None) -> None:
        self.domain, self.paths = domain, paths
        self.key = domain.entity_key
        self.ttl_seconds = {f.name: view.ttl.total_seconds() for view in domain.feature_views for f in view.features}
        # No such entity: the lookup itself is the readiness probe.
        self.probe_id: Any = "readiness-probe" if domain.entity_dtype == "string" else 0
        if pinned is not None:
            self.champions: scoring.PinnedChampion | scoring.ChampionWatcher = scoring.PinnedChampion(pinned)
        else:
            self.champions = scoring.ChampionWatcher(paths, domain.name, on_switch=self._switched)
        champion = self.champions.current()
        # Other registered versions, when a request names one (a pinned service holds only its own).
        self.on_demand = None if pinned is not None else scoring.OnDemandModels(paths, domain.name)
        self.store = feature_store(paths)
        self._lock = threading.Lock()  # one Feast lookup at a time: the SQLite online store is shared
        self.prediction_log = PredictionLogger(paths.prediction_log(domain.name))
        atexit.register(self.prediction_log.close)  # fallback if the host's shutdown hook does not run
        logger.info(
            "serving %s (threshold %.4f, feature service %s) from %s",
            champion.tag,
            champion.threshold,
            champion.feature_service,
            paths.root,
        )

    # --- requests -----------------------------------------------------------------------------------

    def predict_ids(self, ids: Sequence[Any], model_version: str | None = None) -> dict[str, Any]:
        """Score entities with online features; unknown ones get an error entry, never a default score."""
        started = time.perf_counter()
        champion = self.model_for(model_version)
        ids = list(ids)
        with self._online_store():
            rows, times = scoring.online_lookup(self.store, champion, self.key, ids)
        results = scoring.score_rows(champion, self.key, ids, rows)
        now = time.time()
        for result, entity_times in zip(results, times):
            if "error" not in result:
                # A stale feature is flagged, never silently used as if fresh.
                result.update(scoring.freshness(entity_times, self.ttl_seconds, now))
        # The time the online values were written: a point-in-time recompute at it must give the same values.
        newest = [max((t for t in entity_times.values() if t is not None), default=None) for entity_times in times]
        features_at = [None if t is None else datetime.fromtimestamp(t, UTC) for t in newest]
        self._log_predictions("predict_ids", started, champion, results, rows, ids, features_at)
        return {"model_version": champion.tag, "threshold": champion.threshold, "predictions": results}

    def precomputed(self, ids: Sequence[Any]) -> dict[str, Any]:
        """Batch scores from the online store (no model run); an entity never batch-scored gets an error entry."""
        started = time.perf_counter()
        champion = self.champions.current()
        ids = list(ids)
        try:
            with self._online_store():
                found = precomputed_scores(self.store, self.domain, ids)
        except FeatureViewNotFoundException:
            raise Unavailable(
                f"no precomputed scores yet: materialize the {self.domain.name}/batch_scores asset first"
            ) from None
        results = [
            {**hit, "by_current_model": hit["model_version"] == champion.tag}
            if hit
            else {self.key: i, "error": "no precomputed score: not active at the last batch scoring"}
            for i, hit in zip(ids, found)
        ]
        self._log_predictions("precomputed", started, champion, results, [{}] * len(ids), ids)
        return {"model_version": champion.tag, "predictions": results}

    def predict_features(self, rows: Sequence[dict[str, Any]], model_version: str | None = None) -> dict[str, Any]:
        """Score rows of explicit feature values (every model feature; unknown or missing names: InvalidRequest)."""
        started = time.perf_counter()
        champion = self.model_for(model_version, online=False)
        rows = list(rows)
        try:
            frame = scoring.features_frame(champion, rows)
        except scoring.FeatureInputError as exc:
            raise InvalidRequest(str(exc)) from None
        results = scoring.score(champion, frame)
        self._log_predictions("predict_features", started, champion, results, rows, None)
        return {"model_version": champion.tag, "threshold": champion.threshold, "predictions": results}

    def explain(self, entity_id: Any, top: int = 5, model_version: str | None = None) -> dict[str, Any]:
        """Top SHAP contributions (LightGBM pred_contrib, log-odds) for one entity's online features."""
        champion = self.model_for(model_version)
        with self._online_store():
            frame = scoring.online_frame(self.store, champion, self.key, entity_id)
        if frame is None:
            raise NotFound(f"unknown entity: no online features for {self.key} {entity_id}")
        return {self.key: entity_id, **scoring.explain(champion, frame, top=top)}

    def model_info(self) -> dict[str, Any]:
        """The served champion: tag, threshold, feature service, features and test metrics."""
        champion = self.champions.current()
        meta = champion.metadata
        return {
            "dataset": self.domain.name,
            "model_version": champion.tag,
            "threshold": champion.threshold,
            "feature_service": champion.feature_service,
            "features": champion.features,
            "test_metrics": (meta.get("metrics") or {}).get("test"),
            "trained_at": meta.get("trained_at"),
            "code_version": meta.get("code_version"),
            "model_sha256": meta.get("model_sha256"),
            "loaded_on_demand": self.on_demand.loaded() if self.on_demand else [],
        }

    def ready(self) -> bool:
        """Whether the online store answers a lookup for the current champion (what /readyz reports)."""
        try:
            with self._online_store():
                scoring.online_lookup(self.store, self.champions.current(), self.key, [self.probe_id])
        except Exception as exc:
            logger.warning("not ready: %s", exc)
            return False
        return True

    def model_for(self, version: str | None, online: bool = True) -> scoring.ChampionModel:
        """The champion, or the registered version a request names (loaded on demand, then kept).

        One model for the whole request, even across a champion switch. A version a pinned service does
        not hold is an InvalidRequest; an unknown version is a NotFound, and with `online` so is a version
        whose feature service the feature store no longer has; a corrupt model file is Unavailable.
        """
        champion = self.champions.current()
        if version is None or version in (champion.tag, champion.tag.partition(":")[2]):
            return champion
        if self.on_demand is None:
            raise InvalidRequest(f"this bento serves only {champion.tag}, not model_version {version!r}")
        try:
            model = self.on_demand.get(version)
        except model_registry.ModelIntegrityError as exc:
            raise Unavailable(str(exc)) from None
        except model_registry.RegistryError as exc:
            raise NotFound(f"model_version {version!r}: {exc}") from None
        if online:
            try:
                with self._lock:
                    self.store.get_feature_service(model.feature_service, allow_cache=True)
            except FeatureServiceNotFoundException:
                raise NotFound(
                    f"{model.tag} reads feature service {model.feature_service}, which the feature "
                    "store no longer has; use predict_features with its features"
                ) from None
        return model

    def close(self) -> None:
        """Write the buffered prediction log records (call on shutdown)."""
        self.prediction_log.close()

    # --- internals ----------------------------------------------------------------------------------

    @contextmanager
    def _online_store(self) -> Iterator[None]:
        """One online store read at a time (sqlite is shared); a store that does not answer is Unavailable."""
        try:
            with self._lock:
                yield
        except ONLINE_STORE_ERRORS as exc:
            raise Unavailable(
                f"the online store did not answer ({type(exc).__name__}: {exc}); try again later"
            ) from None

    @staticmethod
    def _switched(old: scoring.ChampionModel, new: scoring.ChampionModel) -> None:
        logger.warning("champion changed: now serving %s (was %s)", new.tag, old.tag)

    def _log_predictions(
        self,
        endpoint: str,
        started: float,
        champion: scoring.ChampionModel,
        results: list[dict[str, Any]],
        rows: list[dict[str, Any]],
        ids: list[Any] | None,
        features_at: list[datetime | None] | None = None,
    ) -> None:
        """One log record per result (never raises: logging must not fail a prediction)."""
        try:
            latency_ms = (time.perf_counter() - started) * 1000.0
            request_id = uuid.uuid4().hex
            self.prediction_log.log(
                {
                    "request_id": request_id,
                    "row_index": n,
                    "endpoint": endpoint,
                    "entity_id": str(ids[n]) if ids is not None else None,
                    # The row itself (exactly the champion's features, never changed after scoring); JSON at flush.
                    "features": row or None,
                    "features_at": features_at[n] if features_at else None,
                    "model_version": result.get("model_version", champion.tag),
                    "score": result.get("score"),
                    "decision": result.get("decision"),
                    "latency_ms": latency_ms,
                    "error": result.get("error"),
                }
                for n, (result, row) in enumerate(zip(results, rows))
            )
        except Exception:
            logger.exception("could not log %d predictions of %s", len(results), endpoint)
