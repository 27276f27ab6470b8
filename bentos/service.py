"""The service every domain gets: make_service(domain) builds its `@bentoml.service` class.

bentos/churn_service.py (the demo) and bentos/dataset_service.py (any dataset, by `--arg dataset=`)
are one line each over this. Data root from LAKEHOUSE_DATA_ROOT (default <repo>/data). The model is
referenced at class scope (`model`), so `bentoml build --arg model_tag=<tag>` packages it into a
bento pinned to that version (the <domain>/bento asset does this for every champion). Started without
model_tag the service follows the champion pointer and switches to a new champion without a
restart. Either way the model file's SHA-256 is checked at load: a modified file stops startup.
Scoring logic lives in lakehouse.serving.scoring; this file only does IO.

Endpoints (POST, JSON): /predict_ids, /predict_features, /precomputed, /explain, /model_info;
BentoML adds /healthz, /livez, /readyz (ready once the online store answers), /metrics. An online store
that does not answer makes a request a 503. Ids go in "<entity key>s" (churn: customer_ids),
at most 1000 ids or rows per request (MAX_BATCH). If LAKEHOUSE_API_KEY is set, every path except
the health probes needs header x-api-key (else 401). predict_ids, predict_features and explain take
an optional "model_version": another registered version answers instead of the champion, loaded and
SHA-checked on first use, the last four kept (model on demand; a pinned bento refuses it).

Every prediction is logged (one record per id or row, one request id per call, the call's latency)
through lakehouse.serving.prediction_log into <data root>/prediction_log/<domain>; the buffer is flushed by a
background thread and on shutdown (the on_shutdown hook, atexit as a fallback). A failure to log
never fails a prediction.
"""

from __future__ import annotations

import atexit
import hmac
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Optional, Union

import lakehouse  # noqa: F401  (first: Feast then loads without typeguard's recompile, lakehouse/__init__.py)

import bentoml
from bentoml.exceptions import InvalidArgument, NotFound, ServiceUnavailable
from bentoml.validators import ContentType
from feast.errors import FeatureServiceNotFoundException, FeatureViewNotFoundException
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, create_model
from redis import RedisError

from lakehouse.ml import model_registry

from lakehouse.serving import scoring
from lakehouse.serving.batch_scores import precomputed_scores
from lakehouse.declarations.domain import Domain
from lakehouse.feature_store.feast_objects import feature_store
from lakehouse.paths import LakePaths
from lakehouse.serving.prediction_log import PredictionLogger

logger = logging.getLogger(__name__)

MAX_BATCH = 1000
API_KEY_ENV = "LAKEHOUSE_API_KEY"
API_KEY_HEADER = "x-api-key"
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
# An online store that cannot be reached or read (sqlite, Redis, the network): the service is unavailable.
ONLINE_STORE_ERRORS = (OSError, sqlite3.Error, RedisError)

# Int64 ids: a larger number is a client error, not a server one. String ids: bounded, non-empty.
INT_ID = Annotated[StrictInt, Field(ge=1, le=2**63 - 1, description="entity id (1 to 2^63-1)")]
STR_ID = Annotated[StrictStr, Field(min_length=1, max_length=200, description="entity id (1 to 200 characters)")]
FeatureValue = Optional[Union[StrictInt, StrictFloat, StrictStr]]
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
# Declared, so BentoML does not derive the media type from a JSON schema on every response (~80 us).
JsonAnswer = Annotated[dict[str, Any], ContentType("application/json")]


class ApiKeyMiddleware:
    """401 for any path but the health probes unless header x-api-key matches LAKEHOUSE_API_KEY (when set).

    The key is read per request, so unsetting it disables the check; compared in constant time.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        key = os.environ.get(API_KEY_ENV)
        if scope["type"] != "http" or not key or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        provided = dict(scope.get("headers") or []).get(API_KEY_HEADER.encode(), b"")
        if hmac.compare_digest(provided, key.encode()):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": f"missing or wrong {API_KEY_HEADER} header"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", API_KEY_HEADER.encode())]})
        await send({"type": "http.response.body", "body": body})


def request_models(domain: Domain, example_id: Any, example_row: dict[str, Any]) -> dict[str, type[BaseModel]]:
    """The strict request bodies of a domain's endpoints (field names follow its entity key)."""
    key = domain.entity_key
    ids_field = f"{key}s"
    entity_id = STR_ID if domain.entity_dtype == "string" else INT_ID
    ids = Annotated[list[entity_id], Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} ids")]
    rows = Annotated[list[dict[str, FeatureValue]], Field(min_length=1, max_length=MAX_BATCH,
                                                         description=f"1 to {MAX_BATCH} feature rows")]
    top = Annotated[StrictInt, Field(ge=1, le=50, description="how many contributions to return")]
    version = Annotated[Optional[StrictStr], Field(min_length=1, max_length=100, description=(
        "a registered model version or tag (a unique prefix will do) to answer with instead of the champion"))]

    def model(name: str, doc: str, example: dict[str, Any], **fields: Any) -> type[BaseModel]:
        built = create_model(name, __config__=ConfigDict(**_STRICT, json_schema_extra={"example": example}), **fields)
        built.__doc__ = doc
        return built

    return {
        "ids": model("PredictIdsRequest", f"{key} values to score from the Feast online store (1 to {MAX_BATCH}); "
                     "model_version: score with that registered version instead of the champion.",
                     {ids_field: [example_id]}, **{ids_field: (ids, ...)}, model_version=(version, None)),
        "precomputed": model("PrecomputedRequest", f"{key} values whose batch scores to look up (1 to {MAX_BATCH}).",
                             {ids_field: [example_id]}, **{ids_field: (ids, ...)}),
        "rows": model("PredictFeaturesRequest", "Rows of explicit feature values: every feature of the model, no "
                      f"others (null = missing); 1 to {MAX_BATCH} rows. model_version: as in predict_ids.",
                      {"rows": [example_row]}, rows=(rows, ...), model_version=(version, None)),
        "explain": model("ExplainRequest", f"One {key} to explain with LightGBM's SHAP contributions (log-odds); "
                         "model_version: as in predict_ids.", {key: example_id, "top": 5},
                         **{key: (entity_id, ...)}, top=(top, 5), model_version=(version, None)),
        "info": model("ModelInfoRequest", "No fields: POST {}.", {}),
    }


def make_service(domain: Domain, example_id: Any = 1, example_row: dict[str, Any] | None = None,
                 port: int = 3001) -> Any:
    """The `@bentoml.service` class serving a domain's champion (pinned by `--arg model_tag=` when given)."""
    key = domain.entity_key
    ids_field = f"{key}s"
    ttl_seconds = {f.name: view.ttl.total_seconds() for view in domain.feature_views for f in view.features}
    pinned_tag = getattr(bentoml.use_arguments(), "model_tag", None)
    probe_id = "readiness-probe" if domain.entity_dtype == "string" else 0  # no such entity: the read is the probe
    models = request_models(domain, example_id, example_row or {})

    def packaged_model() -> bentoml.models.BentoModel | None:
        """The class-scope model reference: the pinned tag, else the data root's current champion (if any)."""
        if pinned_tag:
            return bentoml.models.BentoModel(pinned_tag)
        paths = LakePaths.from_env()
        model_registry.use_as_default_store(paths)  # BentoML's model store is the data root's registry
        tag = model_registry.champion(paths, domain.name)
        return bentoml.models.BentoModel(tag) if tag else None

    class Service:
        # What `bentoml build` packages: the pinned version, else the champion when this module is imported.
        model = packaged_model()

        def __init__(self) -> None:
            self.paths = LakePaths.from_env()
            # Raises NoChampionError / ModelIntegrityError: the service must not start on a bad model.
            if pinned_tag:
                stored = self.model  # resolved from the bento's own model store when served from a bento
                self.champions = scoring.PinnedChampion(
                    scoring.champion_model(str(stored.tag), *model_registry.read_model(stored)))
            else:
                self.champions = scoring.ChampionWatcher(self.paths, domain.name, on_switch=self._switched)
            champion = self.champions.current()
            # Other registered versions, when a request names one (a pinned bento holds only its own).
            self.on_demand = None if pinned_tag else scoring.OnDemandModels(self.paths, domain.name)
            self.store = feature_store(self.paths)
            self._lock = threading.Lock()  # one Feast lookup at a time: the SQLite online store is shared
            self.prediction_log = PredictionLogger(self.paths.prediction_log(domain.name))
            atexit.register(self.prediction_log.close)  # fallback if the shutdown hook does not run
            logger.info("serving %s (threshold %.4f, feature service %s) from %s", champion.tag,
                        champion.threshold, champion.feature_service, self.paths.root)

        @contextmanager
        def _online_store(self) -> Iterator[None]:
            """One online store read at a time (sqlite is shared); a store that does not answer is a 503, not a 500."""
            try:
                with self._lock:
                    yield
            except ONLINE_STORE_ERRORS as exc:
                raise ServiceUnavailable(f"the online store did not answer ({type(exc).__name__}: {exc}); "
                                         "try again later") from None

        def __is_ready__(self) -> bool:
            """/readyz: ready when the online store answers a lookup for the current champion."""
            try:
                with self._online_store():
                    scoring.online_lookup(self.store, self.champions.current(), key, [probe_id])
            except Exception as exc:
                logger.warning("not ready: %s", exc)
                return False
            return True

        @staticmethod
        def _switched(old: scoring.ChampionModel, new: scoring.ChampionModel) -> None:
            logger.warning("champion changed: now serving %s (was %s)", new.tag, old.tag)

        def _model(self, version: Optional[str], online: bool = True) -> scoring.ChampionModel:
            """The champion, or the registered version a request names (loaded on demand, then kept).

            One model for the whole request, even across a champion switch. An unknown version is a 404;
            with `online`, so is a version whose feature service the feature store no longer has.
            """
            champion = self.champions.current()
            if version is None or version in (champion.tag, champion.tag.partition(":")[2]):
                return champion
            if self.on_demand is None:
                raise InvalidArgument(f"this bento serves only {champion.tag}, not model_version {version!r}")
            try:
                model = self.on_demand.get(version)
            except model_registry.ModelIntegrityError as exc:
                raise ServiceUnavailable(str(exc)) from None
            except model_registry.RegistryError as exc:
                raise NotFound(f"model_version {version!r}: {exc}") from None
            if online:
                try:
                    with self._lock:
                        self.store.get_feature_service(model.feature_service, allow_cache=True)
                except FeatureServiceNotFoundException:
                    raise NotFound(f"{model.tag} reads feature service {model.feature_service}, which the feature "
                                   "store no longer has; use predict_features with its features") from None
            return model

        @bentoml.api(input_spec=models["ids"])
        def predict_ids(self, model_version: Optional[str] = None, **request: Any) -> JsonAnswer:
            """Score entities with online features; unknown ones get an error entry, never a default score."""
            started = time.perf_counter()
            champion = self._model(model_version)
            ids = list(request[ids_field])
            with self._online_store():
                rows, times = scoring.online_lookup(self.store, champion, key, ids)
            results = scoring.score_rows(champion, key, ids, rows)
            now = time.time()
            for result, entity_times in zip(results, times):
                if "error" not in result:
                    # A stale feature is flagged, never silently used as if fresh.
                    result.update(scoring.freshness(entity_times, ttl_seconds, now))
            # The time the online values were written: a point-in-time recompute at it must give the same values.
            newest = [max((t for t in entity_times.values() if t is not None), default=None) for entity_times in times]
            features_at = [None if t is None else datetime.fromtimestamp(t, UTC) for t in newest]
            self._log_predictions("predict_ids", started, champion, results, rows, ids, features_at)
            return {"model_version": champion.tag, "threshold": champion.threshold, "predictions": results}

        @bentoml.api(input_spec=models["precomputed"])
        def precomputed(self, **request: Any) -> JsonAnswer:
            """Batch scores from the online store (no model run); an entity never batch-scored gets an error entry."""
            started = time.perf_counter()
            champion = self.champions.current()
            ids = list(request[ids_field])
            try:
                with self._online_store():
                    found = precomputed_scores(self.store, domain, ids)
            except FeatureViewNotFoundException:
                raise ServiceUnavailable(f"no precomputed scores yet: materialize the {domain.name}/batch_scores "
                                         "asset first") from None
            results = [{**hit, "by_current_model": hit["model_version"] == champion.tag} if hit else
                       {key: i, "error": "no precomputed score: not active at the last batch scoring"}
                       for i, hit in zip(ids, found)]
            self._log_predictions("precomputed", started, champion, results, [{}] * len(ids), ids)
            return {"model_version": champion.tag, "predictions": results}

        @bentoml.api(input_spec=models["rows"])
        def predict_features(self, rows: list[dict[str, Any]], model_version: Optional[str] = None) -> JsonAnswer:
            """Score rows of explicit feature values (every model feature; unknown or missing names are a 400)."""
            started = time.perf_counter()
            champion = self._model(model_version, online=False)
            rows = list(rows)
            try:
                frame = scoring.features_frame(champion, rows)
            except scoring.FeatureInputError as exc:
                raise InvalidArgument(str(exc)) from None
            results = scoring.score(champion, frame)
            self._log_predictions("predict_features", started, champion, results, rows, None)
            return {"model_version": champion.tag, "threshold": champion.threshold, "predictions": results}

        def _log_predictions(self, endpoint: str, started: float, champion: scoring.ChampionModel,
                             results: list[dict[str, Any]], rows: list[dict[str, Any]], ids: Optional[list[Any]],
                             features_at: Optional[list[Optional[datetime]]] = None) -> None:
            """One log record per result (never raises: logging must not fail a prediction)."""
            try:
                latency_ms = (time.perf_counter() - started) * 1000.0
                request_id = uuid.uuid4().hex
                self.prediction_log.log({
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
                } for n, (result, row) in enumerate(zip(results, rows)))
            except Exception:
                logger.exception("could not log %d predictions of %s", len(results), endpoint)

        @bentoml.on_shutdown
        def close_prediction_log(self) -> None:
            """Write the buffered prediction log records (runs on a clean `bentoml serve` shutdown)."""
            self.prediction_log.close()

        @bentoml.api(input_spec=models["explain"])
        def explain(self, top: int = 5, model_version: Optional[str] = None, **request: Any) -> JsonAnswer:
            """Top SHAP contributions (LightGBM pred_contrib, log-odds) for one entity's online features."""
            champion = self._model(model_version)
            entity_id = request[key]
            with self._online_store():
                frame = scoring.online_frame(self.store, champion, key, entity_id)
            if frame is None:
                raise NotFound(f"unknown entity: no online features for {key} {entity_id}")
            return {key: entity_id, **scoring.explain(champion, frame, top=top)}

        @bentoml.api(input_spec=models["info"])
        def model_info(self) -> JsonAnswer:
            """The served champion: tag, threshold, feature service, features and test metrics."""
            champion = self.champions.current()
            meta = champion.metadata
            return {
                "dataset": domain.name,
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

    Service.__name__ = Service.__qualname__ = "".join(p.title() for p in domain.name.split("_")) + "Service"
    Service.__doc__ = f"{domain.name} scores from the registered champion model, with features from Feast's online store."
    service = bentoml.service(
        name=f"{domain.name}_service",
        http={"host": "127.0.0.1", "port": port},  # 3000 is the Dagster UI
        traffic={"timeout": 30},
        workers=1,
    )(Service)
    service.add_asgi_middleware(ApiKeyMiddleware)
    return service
