"""The `@bentoml.service` class every domain gets: make_service(domain) wraps PredictionService in HTTP.

The state and request logic is lakehouse.serving.prediction_service.PredictionService; this module adds
the strict request bodies, the class-scope model reference `bentoml build` packages, the API key check
and the mapping of the core's errors to HTTP statuses. Endpoints and behaviour: bentos/README.md.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
from collections.abc import Callable
from typing import Annotated, Any, Optional, Union

import lakehouse  # noqa: F401  (first: Feast then loads without typeguard's recompile, lakehouse/__init__.py)

# isort: split
import bentoml
from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound, ServiceUnavailable
from bentoml.validators import ContentType
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, create_model

from lakehouse.declarations.domain import Domain
from lakehouse.ml import model_registry
from lakehouse.paths import LakePaths
from lakehouse.serving import prediction_service
from lakehouse.serving.prediction_service import PredictionService

MAX_BATCH = 1000
API_KEY_ENV = "LAKEHOUSE_API_KEY"
API_KEY_HEADER = "x-api-key"
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
MAX_BODY_ENV = "LAKEHOUSE_MAX_BODY_BYTES"
DEFAULT_MAX_BODY = 4 * 1024 * 1024  # a batch of 1,000 feature rows is well under 1 MiB
# The core's request errors as BentoML's, which carry their HTTP status.
HTTP_ERRORS: dict[type[prediction_service.RequestError], type[BentoMLException]] = {
    prediction_service.InvalidRequest: InvalidArgument,  # 400
    prediction_service.NotFound: NotFound,  # 404
    prediction_service.Unavailable: ServiceUnavailable,  # 503
}

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
        await send_json_error(
            send, 401, f"missing or wrong {API_KEY_HEADER} header", [(b"www-authenticate", API_KEY_HEADER.encode())]
        )


async def send_json_error(send: Any, status: int, message: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Answer an ASGI request with {"error": message} before it reaches the service."""
    body = json.dumps({"error": message}).encode()
    start = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})


class BodySizeMiddleware:
    """413 for a request body over LAKEHOUSE_MAX_BODY_BYTES (default 4 MiB), before anything parses it.

    A declared content-length is refused at once; a chunked body is read up to the limit and replayed.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = int(os.environ.get(MAX_BODY_ENV) or DEFAULT_MAX_BODY)
        too_big = f"request body over {limit} bytes ({MAX_BODY_ENV}); send fewer rows per request"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                await send_json_error(send, 413, too_big)
                return
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await send_json_error(send, 413, too_big)
                return
            if not message.get("more_body"):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> dict:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


def request_models(domain: Domain, example_id: Any, example_row: dict[str, Any]) -> dict[str, type[BaseModel]]:
    """The strict request bodies of a domain's endpoints (field names follow its entity key)."""
    key = domain.entity_key
    ids_field = f"{key}s"
    entity_id = STR_ID if domain.entity_dtype == "string" else INT_ID
    ids = Annotated[list[entity_id], Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} ids")]
    rows = Annotated[
        list[dict[str, FeatureValue]],
        Field(min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} feature rows"),
    ]
    top = Annotated[StrictInt, Field(ge=1, le=50, description="how many contributions to return")]
    version = Annotated[
        Optional[StrictStr],
        Field(
            min_length=1,
            max_length=100,
            description=(
                "a registered model version or tag (a unique prefix will do) to answer with instead of the champion"
            ),
        ),
    ]

    def model(name: str, doc: str, example: dict[str, Any], **fields: Any) -> type[BaseModel]:
        built = create_model(name, __config__=ConfigDict(**_STRICT, json_schema_extra={"example": example}), **fields)
        built.__doc__ = doc
        return built

    return {
        "ids": model(
            "PredictIdsRequest",
            f"{key} values to score from the Feast online store (1 to {MAX_BATCH}); "
            "model_version: score with that registered version instead of the champion.",
            {ids_field: [example_id]},
            **{ids_field: (ids, ...)},
            model_version=(version, None),
        ),
        "precomputed": model(
            "PrecomputedRequest",
            f"{key} values whose batch scores to look up (1 to {MAX_BATCH}).",
            {ids_field: [example_id]},
            **{ids_field: (ids, ...)},
        ),
        "rows": model(
            "PredictFeaturesRequest",
            "Rows of explicit feature values: every feature of the model, no "
            f"others (null = missing); 1 to {MAX_BATCH} rows. model_version: as in predict_ids.",
            {"rows": [example_row]},
            rows=(rows, ...),
            model_version=(version, None),
        ),
        "explain": model(
            "ExplainRequest",
            f"One {key} to explain with LightGBM's SHAP contributions (log-odds); model_version: as in predict_ids.",
            {key: example_id, "top": 5},
            **{key: (entity_id, ...)},
            top=(top, 5),
            model_version=(version, None),
        ),
        "info": model("ModelInfoRequest", "No fields: POST {}.", {}),
    }


def http_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """An API method whose PredictionService errors become BentoML's (400, 404, 503), message kept."""

    @functools.wraps(method)
    def translated(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except prediction_service.RequestError as exc:
            http = next((error for kind, error in HTTP_ERRORS.items() if isinstance(exc, kind)), None)
            if http is None:
                raise
            raise http(str(exc)) from None

    return translated


def packaged_model(domain: Domain, pinned_tag: str | None) -> bentoml.models.BentoModel | None:
    """The class-scope model reference: the pinned tag, else the data root's current champion (if any)."""
    if pinned_tag:
        return bentoml.models.BentoModel(pinned_tag)
    paths = LakePaths.from_env()
    model_registry.use_as_default_store(paths)  # BentoML's model store is the data root's registry
    tag = model_registry.champion(paths, domain.name)
    return bentoml.models.BentoModel(tag) if tag else None


def make_service(
    domain: Domain, example_id: Any = 1, example_row: dict[str, Any] | None = None, port: int = 3001
) -> Any:
    """The `@bentoml.service` class serving a domain's champion (pinned by `--arg model_tag=` when given)."""
    pinned_tag = getattr(bentoml.use_arguments(), "model_tag", None)
    key, ids_field = domain.entity_key, f"{domain.entity_key}s"
    models = request_models(domain, example_id, example_row or {})

    class Service:
        # What `bentoml build` packages: the pinned version, else the champion when this module is imported.
        model = packaged_model(domain, pinned_tag)

        def __init__(self) -> None:
            # A pinned bento serves its own model (self.model resolves in its store). Raises NoChampionError
            # or ModelIntegrityError: the service must not start on a bad model.
            pinned = prediction_service.stored_champion(self.model) if pinned_tag else None
            self.core = PredictionService(domain, LakePaths.from_env(), pinned=pinned)
            self.store = self.core.store  # the Feast feature store the service reads

        def __is_ready__(self) -> bool:
            """/readyz: ready when the online store answers a lookup for the current champion."""
            return self.core.ready()

        @bentoml.on_shutdown
        def close_prediction_log(self) -> None:
            """Write the buffered prediction log records (runs on a clean `bentoml serve` shutdown)."""
            self.core.close()

        @bentoml.api(input_spec=models["ids"])
        @http_errors
        def predict_ids(self, model_version: Optional[str] = None, **request: Any) -> JsonAnswer:
            """Score entities with online features; unknown ones get an error entry, never a default score."""
            return self.core.predict_ids(request[ids_field], model_version)

        @bentoml.api(input_spec=models["precomputed"])
        @http_errors
        def precomputed(self, **request: Any) -> JsonAnswer:
            """Batch scores from the online store (no model run); an entity never batch-scored gets an error entry."""
            return self.core.precomputed(request[ids_field])

        @bentoml.api(input_spec=models["rows"])
        @http_errors
        def predict_features(self, rows: list[dict[str, Any]], model_version: Optional[str] = None) -> JsonAnswer:
            """Score rows of explicit feature values (every model feature; unknown or missing names are a 400)."""
            return self.core.predict_features(rows, model_version)

        @bentoml.api(input_spec=models["explain"])
        @http_errors
        def explain(self, top: int = 5, model_version: Optional[str] = None, **request: Any) -> JsonAnswer:
            """Top SHAP contributions (LightGBM pred_contrib, log-odds) for one entity's online features."""
            return self.core.explain(request[key], top, model_version)

        @bentoml.api(input_spec=models["info"])
        @http_errors
        def model_info(self) -> JsonAnswer:
            """The served champion: tag, threshold, feature service, features and test metrics."""
            return self.core.model_info()

    Service.__name__ = Service.__qualname__ = "".join(p.title() for p in domain.name.split("_")) + "Service"
    Service.__doc__ = (
        f"{domain.name} scores from the registered champion model, with features from Feast's online store."
    )
    service = bentoml.service(
        name=f"{domain.name}_service",
        http={"host": "127.0.0.1", "port": port},  # 3000 is the Dagster UI
        traffic={"timeout": 30},
        workers=1,
    )(Service)
    service.add_asgi_middleware(ApiKeyMiddleware)
    service.add_asgi_middleware(BodySizeMiddleware)
    return service
