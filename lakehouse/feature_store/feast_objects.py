"""Feast objects built from a domain declaration, and the feature store configured for a data root.

Feast is imported inside this module only; callers import it where Feast is needed (import costs ~7 s).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from lakehouse.declarations.domain import Domain
from lakehouse.paths import FEATURE_REPO, LakePaths

FEAST_TYPES = {"int64": "Int64", "float64": "Float64", "string": "String"}
ONLINE_STORE_ENV = "LAKEHOUSE_ONLINE_STORE"  # the production profile's Redis, e.g. redis://127.0.0.1:6379/0
REDIS_STORE_TYPE = (
    "lakehouse.feature_store.redis_online_store.LakehouseRedisOnlineStore"  # Feast's Redis store, all views in one read
)
REGISTRY_ENV = "LAKEHOUSE_FEAST_REGISTRY"  # its registry on PostgreSQL, e.g. postgresql://feast@db:5432/feast
SCORES_TTL = timedelta(days=2)  # a precomputed score older than this is not served: batch scoring runs daily


@dataclass
class FeastObjects:
    """The Feast definitions of one domain."""

    entity: Any
    sources: dict[str, Any]
    views: dict[str, Any]
    service: Any
    scores: Any  # the champion's precomputed scores (written by batch scoring, not part of the service)

    def all(self) -> list[Any]:
        return [self.entity, *self.sources.values(), *self.views.values(), self.service, self.scores]

    def by_name(self) -> dict[str, Any]:
        """Module-level names for a Feast repository file (Feast collects objects from module attributes)."""
        names = {self.entity.name: self.entity, self.service.name: self.service}
        names |= {f"{n}_source": s for n, s in self.sources.items()}
        names |= {f"{n}_view": v for n, v in self.views.items()}
        names[f"{self.scores.name}_view"] = self.scores
        return names


def feast_objects(domain: Domain, paths: LakePaths) -> FeastObjects:
    """The entity, Parquet sources, feature views and versioned feature service of a domain."""
    import feast.types
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType

    entity = Entity(
        name=domain.entity,
        join_keys=[domain.entity_key],
        value_type=ValueType.STRING if domain.entity_dtype == "string" else ValueType.INT64,
        description=domain.entity_description,
    )
    sources, views = {}, {}
    for view in domain.feature_views:
        sources[view.name] = FileSource(
            name=f"{view.name}_source",
            path=str(paths.features(view.name)),
            timestamp_field="event_timestamp",
            description=f"Offline feature table of {view.name}, written by the {view.name}_features asset.",
        )
        views[view.name] = FeatureView(
            name=view.name,
            entities=[entity],
            ttl=view.ttl,
            schema=[
                Field(name=f.name, dtype=getattr(feast.types, FEAST_TYPES[f.dtype]), description=f.description)
                for f in view.features
            ],
            source=sources[view.name],
            online=True,
            description=view.description,
            tags={"domain": domain.name},
        )
    service = FeatureService(
        name=domain.feature_service,
        features=list(views.values()),
        description=f"Every feature the {domain.name} model uses: {domain.prediction}",
        tags={"domain": domain.name},
    )
    scores = FeatureView(
        name=scores_view_name(domain),
        entities=[entity],
        ttl=SCORES_TTL,
        schema=[
            Field(name="score", dtype=feast.types.Float64, description="the champion's probability"),
            Field(name="decision", dtype=feast.types.Bool, description="score >= the champion's threshold"),
            Field(name="model_version", dtype=feast.types.String, description="the model that scored"),
        ],
        source=FileSource(
            name=f"{scores_view_name(domain)}_source",
            path=str(paths.batch_scores(domain.name)),
            timestamp_field="event_timestamp",
            description="Batch scores, written by the batch_scores asset.",
        ),
        online=True,
        description=f"Precomputed {domain.name} scores of every active {domain.entity}: a lookup, no model run.",
        tags={"domain": domain.name},
    )
    return FeastObjects(entity, sources, views, service, scores)


def scores_view_name(domain: Domain) -> str:
    return f"{domain.name}_scores"


def online_store_url() -> str | None:
    """The production profile's online store, redis://[:password@]host:port[/db] from LAKEHOUSE_ONLINE_STORE.

    Unset (or "sqlite"): the lakehouse sqlite store under the data root.
    """
    url = os.environ.get(ONLINE_STORE_ENV, "").strip()
    return None if url in ("", "sqlite") else url


def redis_online_store(url: str) -> dict[str, Any]:
    """Feast's Redis online store settings for a redis:// or rediss:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"{ONLINE_STORE_ENV}={url!r}: expected redis://[:password@]host:port[/db] (or sqlite)")
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"{ONLINE_STORE_ENV}={url!r}: the database is a number, e.g. redis://127.0.0.1:6379/0")
    options = [f"{parts.hostname}:{parts.port or 6379}", f"db={db}"]
    if parts.password:
        options.append(f"password={parts.password}")
    if parts.scheme == "rediss":
        options.append("ssl=true")
    return {"type": REDIS_STORE_TYPE, "connection_string": ",".join(options)}


def sql_registry(url: str) -> dict[str, Any]:
    """Feast's SQL registry settings for a postgresql:// URL (the production profile's registry)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgresql+psycopg") or not parts.hostname or not parts.path.strip("/"):
        raise ValueError(f"{REGISTRY_ENV}={url!r}: expected postgresql://user[:password]@host:port/database")
    # Named psycopg (3) explicitly, as Feast would rewrite it, warning each time.
    path = urlunsplit(parts._replace(scheme="postgresql+psycopg"))
    return {"registry_type": "sql", "path": path, "sqlalchemy_config_kwargs": {"echo": False, "pool_pre_ping": True}}


def store_locations(paths: LakePaths) -> dict[str, str]:
    """Where the data root's Feast registry and online store live, passwords left out (UI and summary)."""
    config = resolved_yaml(paths)
    registry, online = config["registry"], config["online_store"]
    if registry.get("registry_type") == "sql":
        parts = urlsplit(registry["path"])
        where = f"sql: {parts.scheme}://{parts.username or ''}@{parts.hostname}:{parts.port or 5432}{parts.path}"
    else:
        where = f"file: {registry['path']}"
    return {"registry": where, "online_store": online_store_location(online)}


def online_store_location(online: Mapping[str, Any]) -> str:
    """An online store's kind and location from its config (feature_store.yaml's online_store), no password."""
    if online.get("connection_string"):
        host, *options = online["connection_string"].split(",")
        return f"redis: {host} {' '.join(o for o in options if not o.startswith('password='))}".strip()
    return f"sqlite: {online['path']}"


def online_store_kind() -> str:
    """The online store's kind tag for the Dagster UI: redis or sqlite."""
    return "redis" if online_store_url() else "sqlite"


def resolved_yaml(paths: LakePaths) -> dict[str, Any]:
    """feature_repo/feature_store.yaml with its registry and online store under the data root, or on
    PostgreSQL (LAKEHOUSE_FEAST_REGISTRY) and Redis (LAKEHOUSE_ONLINE_STORE)."""
    raw = yaml.safe_load((FEATURE_REPO / "feature_store.yaml").read_text())
    registry_url = os.environ.get(REGISTRY_ENV, "").strip()
    if registry_url in ("", "file"):
        raw["registry"]["path"] = str(paths.feast_registry_db)
    else:
        raw["registry"] = sql_registry(registry_url)
    url = online_store_url()
    if url:
        raw["online_store"] = redis_online_store(url)
    else:
        raw["online_store"]["path"] = str(paths.online_store_db)
    return raw


def repo_config(paths: LakePaths) -> Any:
    """Feast's RepoConfig for this data root."""
    from feast.repo_config import RepoConfig

    return RepoConfig(repo_path=FEATURE_REPO, **resolved_yaml(paths))


def feature_store(paths: LakePaths) -> Any:
    """A FeatureStore for this data root (the same definitions as feature_repo/)."""
    from feast import FeatureStore

    paths.feast.mkdir(parents=True, exist_ok=True)
    return FeatureStore(config=repo_config(paths), repo_path=str(FEATURE_REPO))


def apply_definitions(store: Any, domain: Domain, paths: LakePaths) -> dict[str, Any]:
    """Register the domain's Feast objects (what `feast apply` does for feature_repo/)."""
    objects = feast_objects(domain, paths)
    store.apply(objects.all())
    return {
        "project": store.project,
        "entities": [e.name for e in store.list_entities()],
        "feature_views": sorted(v.name for v in store.list_feature_views()),
        "feature_services": [s.name for s in store.list_feature_services()],
    }


def historical_features(store: Any, domain: Domain, entity_df: Any) -> Any:
    """Feast's point-in-time join of the domain's feature service onto entity rows (a pandas frame)."""
    service = store.get_feature_service(domain.feature_service)
    return store.get_historical_features(entity_df=entity_df, features=service).to_df()


def online_features(store: Any, domain: Domain, entity_ids: list[int]) -> dict[str, list]:
    """Online feature values for some entities, through the domain's feature service."""
    service = store.get_feature_service(domain.feature_service)
    rows = [{domain.entity_key: i} for i in entity_ids]
    return store.get_online_features(features=service, entity_rows=rows).to_dict()


def write_resolved_yaml(paths: LakePaths) -> Path:
    """Write a feature_store.yaml for this data root, for `feast -c feature_repo -f <it>` on a moved root."""
    out = paths.feature_store_yaml
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(resolved_yaml(paths), sort_keys=False))
    out.chmod(0o600)  # the production profile's connection strings may carry passwords
    return out
