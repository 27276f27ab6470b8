"""The production profile's online store: Feast's Redis store, read for all of a feature service's views at once.

Feast keeps every feature view of an entity in one Redis hash (fields: a hash of "<view>:<feature>",
plus "_ts:<view>"), but its online_read asks per view: one round trip per view and lookup.
online_read_views asks for the fields of all the views in one HMGET per entity, and decodes each view's
part with Feast's own code, so the answer is exactly online_read's (tests/test_redis_online_store.py
compares them). Writes and materialization are Feast's, with the same bounded retries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from feast import FeatureView, RepoConfig
from feast.infra.online_stores.helpers import _mmh3
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, _versioned_fv_name
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from lakehouse.feature_store.feast_objects import REDIS_STORE_TYPE

RETRIES = 2  # after the first attempt, 50 and 100 ms apart


class LakehouseRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """Config of LakehouseRedisOnlineStore: the same fields as Feast's Redis store."""

    type: Literal["lakehouse.feature_store.redis_online_store.LakehouseRedisOnlineStore"] = REDIS_STORE_TYPE  # type: ignore[assignment]


class LakehouseRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis online store with one read for several feature views, and retries bounded in time."""

    def _get_client(self, online_store_config: RedisOnlineStoreConfig) -> Any:
        """Feast's client, retrying for about 0.3 s instead of redis-py's 8 s: a Redis that is down is a quick 503."""
        new = not self._client
        client = super()._get_client(online_store_config)
        if new:
            client.set_retry(Retry(ExponentialBackoff(cap=0.25, base=0.05), RETRIES))
        return client

    def online_read_views(
        self, config: RepoConfig, views: list[FeatureView], entity_keys: list[EntityKeyProto]
    ) -> list[list[tuple[datetime | None, dict[str, ValueProto] | None]]]:
        """Per view, per entity key: what online_read(config, view, entity_keys) returns, in one round trip."""
        parts: list[tuple[str, list[str]]] = []  # (versioned view name, every field name read for it)
        fields: list[Any] = []
        for view in views:
            name = _versioned_fv_name(view, config)
            features = [f.name for f in view.features]
            parts.append((name, [*features, f"_ts:{name}"]))
            fields += [_mmh3(f"{name}:{f}") for f in features] + [f"_ts:{name}"]
        keys = self._generate_redis_keys_for_entities(config, entity_keys)
        replies = self._read_hash_fields(config, [(key, fields) for key in keys])
        out, start = [], 0
        for name, requested in parts:
            end = start + len(requested)
            out.append([self._get_features_for_entity(reply[start:end], name, requested) for reply in replies])
            start = end
        return out
