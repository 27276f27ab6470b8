"""Fast materialization into Feast's sqlite online store: same table, same bytes, a fraction of the time.

Feast's sqlite store runs one SQL statement per entity and feature, and `feast materialize`
builds one protobuf object per value in Python. This module keeps Feast's table layout and
read path (it subclasses Feast's SqliteOnlineStore) and writes with batched upserts, with the
values serialized column-wise by numpy. Select it in feature_store.yaml with::

    online_store:
      type: lakehouse.feature_store.sqlite_online_store.LakehouseSqliteOnlineStore
      path: data/online.db

It imports Feast, so import it only where Feast is needed.
"""

from __future__ import annotations

import logging
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, Optional

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from feast import FeatureStore, FeatureView, FileSource
from feast.data_format import ParquetFormat
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import extract_text_and_num
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
)
from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
from feast.protos.feast.types.Value_pb2 import Value as ValueProto
from feast.repo_config import RepoConfig
from feast.type_map import python_values_to_proto_values
from feast.utils import make_tzaware, to_naive_utc
from feast.value_type import ValueType

log = logging.getLogger(__name__)

STORE_TYPE = "lakehouse.feature_store.sqlite_online_store.LakehouseSqliteOnlineStore"
CHUNK_ROWS = 20_000  # entity rows per Arrow batch: bounds the Python objects alive at once
DUCKDB_MEMORY_LIMIT = "1GB"  # DuckDB spills the windowed dedup to disk beyond this

# (Feast value type, Arrow type) pairs serialized with numpy; anything else goes through
# Feast's own per-value conversion, so it is still byte-identical, only slower.
_VECTORIZED = {
    (ValueType.DOUBLE, pa.float64()),
    (ValueType.FLOAT, pa.float32()),
    (ValueType.INT64, pa.int64()),
    (ValueType.INT32, pa.int32()),
    (ValueType.BOOL, pa.bool_()),
    (ValueType.STRING, pa.string()),
    (ValueType.STRING, pa.large_string()),
}
_PROTO_FIELD = {
    ValueType.DOUBLE: ("double_val", 0.0),
    ValueType.FLOAT: ("float_val", 0.0),
    ValueType.INT64: ("int64_val", 0),
    ValueType.INT32: ("int32_val", 0),
    ValueType.BOOL: ("bool_val", False),
    ValueType.STRING: ("string_val", ""),
}


def _value_proto(field: str, value: Any) -> ValueProto:
    """A Value proto with one field set."""
    proto = ValueProto()
    setattr(proto, field, value)
    return proto


# The field's key byte, taken from protobuf itself: a oneof member is written even when it
# holds its default, so the serialization of the zero value is exactly tag + zero payload.
_TAG = {vt: _value_proto(name, zero).SerializeToString()[0] for vt, (name, zero) in _PROTO_FIELD.items()}
_FLOAT64_EXACT_INT = 2**53


class LakehouseSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Config of LakehouseSqliteOnlineStore: the same fields as Feast's sqlite store."""

    type: Literal["lakehouse.feature_store.sqlite_online_store.LakehouseSqliteOnlineStore"] = STORE_TYPE  # type: ignore[assignment]


class LakehouseSqliteOnlineStore(SqliteOnlineStore):
    """Feast's sqlite online store with batched writes and a bulk Arrow write path."""

    def online_write_batch(
        self,
        config: RepoConfig,
        table: FeatureView,
        data: list[tuple[EntityKeyProto, dict[str, ValueProto], datetime, Optional[datetime]]],
        progress: Optional[Callable[[int], Any]],
    ) -> None:
        """Write Feast's proto rows like the parent does, but with one executemany in one transaction."""
        if config.online_store.vector_enabled:
            # The vector column needs Feast's per-type handling; keep its code path for it.
            return super().online_write_batch(config, table, data, progress)
        conn = self._get_conn(config)
        table_name = self._table_name(config, table)
        has_num = self._has_value_num(config, conn, table_name)
        version = config.entity_key_serialization_version
        # Key order makes sqlite's index inserts appends; the sort is stable, so a key that
        # repeats keeps its last value, as with the parent's row-by-row writes.
        entities = sorted(
            (
                (serialize_entity_key(key, entity_key_serialization_version=version), values, event_ts, created_ts)
                for key, values, event_ts, created_ts in data
            ),
            key=itemgetter(0),
        )

        def rows() -> Iterator[tuple]:
            """Feast's row per entity and feature."""
            for key, values, event_ts, created_ts in entities:
                # Datetimes are bound as they are: the sqlite adapter Feast registers turns them
                # into integers, exactly as in the parent's write.
                event_ts = to_naive_utc(event_ts)
                created_ts = to_naive_utc(created_ts) if created_ts is not None else None
                for name, val in values.items():
                    text, num = extract_text_and_num(val, has_num)
                    extra = (num,) if has_num else ()
                    yield (key, name, val.SerializeToString(), text, *extra, event_ts, created_ts)

        row_sql = "(" + ", ".join(["?"] * len(_columns(has_num))) + ")"
        with conn:
            conn.executemany(_upsert_sql(table_name, has_num, row_sql), rows())
        if progress:
            progress(len(data))

    def write_arrow(
        self,
        config: RepoConfig,
        feature_view: FeatureView,
        table: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch],
        join_key: str,
        timestamp_column: str,
        created_timestamp_column: Optional[str] = None,
        *,
        lossy_int64_columns: Iterable[str] = (),
    ) -> int:
        """Upsert Arrow rows (one per entity, the latest) into the view's table; return the rows written."""
        # `table` holds the join key, the view's features and the timestamp column(s); a reader
        # or an iterable of batches is streamed, all in one transaction. Int64 features named in
        # `lossy_int64_columns` are rounded through float64, as Feast's pandas round trip does to
        # an int64 column holding a null (which only changes values beyond 2**53).
        if config.online_store.vector_enabled:
            raise NotImplementedError("write_arrow does not support vector_enabled; use FeatureStore.materialize")
        entity_type = {f.name: f.dtype.to_value_type() for f in feature_view.entity_columns}
        if join_key not in entity_type:
            raise ValueError(f"{join_key!r} is not a join key of feature view {feature_view.name!r}")
        features = [(f.name, f.dtype.to_value_type()) for f in feature_view.features]
        lossy = set(lossy_int64_columns)
        conn = self._get_conn(config)
        table_name = self._table_name(config, feature_view)
        has_num = self._has_value_num(config, conn, table_name)
        per_feature = 3 if has_num else 2
        # Wide views are written in groups of features so a statement stays under sqlite's
        # historical limit of 999 parameters.
        group = max(1, (999 - 3) // per_feature)
        feature_groups = [features[i : i + group] for i in range(0, len(features), group)]

        def encode(batch: pa.RecordBatch) -> list[list[list]]:
            """The statement parameters of each feature group, as columns, rows in key order."""
            missing = {join_key, timestamp_column, *(n for n, _ in features)} - set(batch.schema.names)
            if missing:
                raise ValueError(f"columns {sorted(missing)} are missing from the Arrow data")
            keys = _entity_key_array(
                batch.column(join_key), entity_type[join_key], join_key, config.entity_key_serialization_version
            )
            # Writing in key order turns the index inserts into appends: ~3x faster than random order.
            order = pc.sort_indices(keys)
            batch = batch.take(order)
            head = [
                keys.take(order).to_pylist(),
                _sqlite_timestamps(batch.column(timestamp_column)),
                _sqlite_timestamps(batch.column(created_timestamp_column))
                if created_timestamp_column
                else [None] * batch.num_rows,
            ]
            groups = []
            for names_types in feature_groups:
                cols = list(head)
                for name, value_type in names_types:
                    values, texts, nums = _encode_values(batch.column(name), value_type, name in lossy, has_num)
                    # sqlite3 binds a bytearray without the adapter lookup a bytes object costs.
                    values = list(map(bytearray, values))
                    cols += [values, texts, nums] if has_num else [values, texts]
                groups.append(cols)
            return groups

        def write(groups: list[list[list]]) -> int:
            """Upsert one encoded batch."""
            for names_types, cols in zip(feature_groups, groups):
                _executemany_grouped(conn, table_name, has_num, [n for n, _ in names_types], cols)
            return len(groups[0][0])

        written = 0
        # One thread encodes the next batch while this one writes: sqlite releases the GIL
        # inside each statement, so the two overlap on a second core.
        with conn, ThreadPoolExecutor(max_workers=1) as encoder:
            pending = None
            for batch in _batches(table):
                if batch.num_rows:
                    encoded = encoder.submit(encode, batch)
                    if pending is not None:
                        written += write(pending.result())
                    pending = encoded
            if pending is not None:
                written += write(pending.result())
        return written

    def online_read(
        self,
        config: RepoConfig,
        table: FeatureView,
        entity_keys: list[EntityKeyProto],
        requested_features: Optional[list[str]] = None,
    ) -> list[tuple[Optional[datetime], Optional[dict[str, ValueProto]]]]:
        """Feast's sqlite read (same query, same answer), converting one timestamp per entity, not per feature."""
        return self.online_read_views(config, [table], entity_keys)[0]

    def online_read_views(
        self, config: RepoConfig, views: list[FeatureView], entity_keys: list[EntityKeyProto]
    ) -> list[list[tuple[Optional[datetime], Optional[dict[str, ValueProto]]]]]:
        """online_read of several views for the same entities: one key encoding and one SQL statement in all."""
        version = config.entity_key_serialization_version
        keys = [serialize_entity_key(key, entity_key_serialization_version=version) for key in entity_keys]
        sql = _read_sql(tuple(self._table_name(config, view) for view in views), len(keys))
        found: list[dict[bytes, list]] = [{} for _ in views]  # per view: key -> [rowid, event_ts, values]
        for n, key, name, value, event_ts, rowid in self._get_conn(config).execute(sql, keys * len(views)).fetchall():
            entity = found[n].get(key)
            if entity is None:
                entity = found[n][key] = [rowid, event_ts, {}]
            elif rowid > entity[0]:
                # Feast's query walks the entity_key index, so an entity's rows come in rowid order, and it
                # answers with the last row's time.
                entity[0], entity[1] = rowid, event_ts
            proto = ValueProto()
            proto.ParseFromString(value)
            entity[2][name] = proto
        # As Feast's converter reads it back: the stored integer is a naive UTC time taken as local.
        return [
            [
                (datetime.fromtimestamp(int(hit[1])).replace(tzinfo=UTC), hit[2])
                if (hit := rows.get(key))
                else (None, None)
                for key in keys
            ]
            for rows in found
        ]

    @staticmethod
    def _table_name(config: RepoConfig, feature_view: FeatureView) -> str:
        """Feast's table name for the view (project prefix, optional version suffix)."""
        return _table_id(config.project, feature_view, config.registry.enable_online_feature_view_versioning)

    def _has_value_num(self, config: RepoConfig, conn: sqlite3.Connection, table_name: str) -> bool:
        """Whether rows get a value_num column, decided as Feast's own write decides it."""
        if not getattr(config.online_store, "enable_openai_compatible_store", False):
            return False
        if self._check_table_has_value_num(conn, table_name):
            return True
        log.warning(
            "enable_openai_compatible_store is True but value_num column not found in table %r. "
            "Run `feast apply` to add it. Writing without value_num.",
            table_name,
        )
        return False


@lru_cache(maxsize=64)
def _read_sql(tables: tuple[str, ...], keys: int) -> str:
    """The rows of `keys` entity keys in each table, tagged with the table's position (no ORDER BY: a sort costs more)."""
    marks = ",".join("?" * keys)
    # `+event_ts` has no declared type, so sqlite's per-row timestamp converter does not run on it.
    return " UNION ALL ".join(
        f"SELECT {n}, entity_key, feature_name, value, +event_ts, rowid FROM {_quote_id(table)} "
        f"WHERE entity_key IN ({marks})"
        for n, table in enumerate(tables)
    )


def _columns(has_num: bool) -> list[str]:
    """The columns Feast's sqlite write fills, in its order."""
    return [
        "entity_key",
        "feature_name",
        "value",
        "value_text",
        *(["value_num"] if has_num else []),
        "event_ts",
        "created_ts",
    ]


def _upsert_sql(table_name: str, has_num: bool, values_sql: str) -> str:
    """Feast's upsert statement with the given VALUES list."""
    cols = _columns(has_num)
    update = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in ("entity_key", "feature_name"))
    return (
        f"INSERT INTO {_quote_id(table_name)} ({', '.join(cols)}) VALUES {values_sql} "
        f"ON CONFLICT(entity_key, feature_name) DO UPDATE SET {update};"
    )


def _executemany_grouped(
    conn: sqlite3.Connection, table_name: str, has_num: bool, names: list[str], cols: list[list]
) -> None:
    """Upsert entity-major rows; cols = [keys, event_ts, created_ts, then value, text(, num) per feature]."""
    # One statement carries all features of several entities: the per-statement overhead of
    # Python's sqlite3 dominates otherwise.
    width = len(cols)
    per_feature = 3 if has_num else 2

    def values_sql(entities: int) -> str:
        """The VALUES rows of `entities` entities, every feature, numbered parameters."""
        rows = []
        for e in range(entities):
            p = e * width + 1  # sqlite parameters are numbered from 1
            for i, name in enumerate(names):
                literal = _sql_string(name)
                v = p + 3 + i * per_feature
                feature_params = [f"?{v + j}" for j in range(per_feature)]
                rows.append(f"(?{p}, {literal}, {', '.join(feature_params)}, ?{p + 1}, ?{p + 2})")
        return ", ".join(rows)

    n = len(cols[0])
    k = max(1, min(16, 999 // width))
    full = n - n % k
    if full:
        # Column j of the grouped statement is every k-th element: slicing does it in C.
        args = [col[e:full:k] for e in range(k) for col in cols]
        conn.executemany(_upsert_sql(table_name, has_num, values_sql(k)), zip(*args))
    if full < n:
        conn.executemany(_upsert_sql(table_name, has_num, values_sql(1)), zip(*[col[full:] for col in cols]))


def _batches(table: pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Record batches of at most CHUNK_ROWS rows."""
    if isinstance(table, pa.Table):
        yield from table.to_batches(max_chunksize=CHUNK_ROWS)
        return
    for batch in table:
        for start in range(0, batch.num_rows, CHUNK_ROWS):
            yield batch.slice(start, CHUNK_ROWS)


# ---------------------------------------------------------------- serialization


def _ragged(matrix: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """Binary array whose row i is matrix[i, :lengths[i]]."""
    n, width = matrix.shape
    data = matrix[np.arange(width) < lengths[:, None]]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _varint(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Protobuf base-128 varints of uint64 values: a (n, 10) byte matrix and each one's length."""
    groups = ((u[:, None] >> np.arange(0, 70, 7, dtype=np.uint64)) & np.uint64(0x7F)).astype(np.uint8)
    nonzero = groups != 0
    lengths = np.where(nonzero.any(axis=1), 10 - np.argmax(nonzero[:, ::-1], axis=1), 1)
    groups[np.arange(10) < (lengths - 1)[:, None]] |= 0x80  # continuation bit on all but the last byte
    return groups, lengths


def _with_tag(tag: int, payload: np.ndarray) -> np.ndarray:
    """Prefix every row of a (n, w) byte matrix with the field's key byte."""
    out = np.empty((payload.shape[0], payload.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = tag
    out[:, 1:] = payload
    return out


def _concat(head: pa.Array, tail: pa.Array) -> pa.Array:
    """Element-wise head + tail of two binary arrays."""
    return pc.binary_join_element_wise(
        head.cast(pa.large_binary()), tail.cast(pa.large_binary()), pa.scalar(b"", pa.large_binary())
    )


def _valid_mask(arr: pa.Array) -> np.ndarray:
    """True where the Arrow value is not null."""
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return arr.is_valid().to_numpy(zero_copy_only=False)


def _with_nulls(values: list, valid: np.ndarray) -> list:
    """Replace the invalid positions of a list by None."""
    for i in np.flatnonzero(~valid).tolist():
        values[i] = None
    return values


def _encode_values(
    arr: pa.Array, value_type: ValueType, lossy_int64: bool = False, with_num: bool = True
) -> tuple[list, list, Optional[list]]:
    """Serialized Value protos, value_text and value_num (None unless with_num) of a column, as Feast writes them."""
    # A null (and a float NaN, which pandas treats as null) becomes an empty Value: b"" with
    # no text, which Feast reads back as None.
    if (value_type, arr.type) not in _VECTORIZED:
        return _encode_values_with_feast(arr, value_type)
    valid = _valid_mask(arr)
    tag = _TAG[value_type]
    if value_type == ValueType.STRING:
        payload = arr.cast(pa.large_binary())
        length = pc.binary_length(payload).fill_null(0).to_numpy().astype(np.uint64)
        varint, varint_len = _varint(length)
        header = _ragged(_with_tag(tag, varint), 1 + varint_len)
        values = _concat(header, payload).fill_null(b"").to_pylist()
        texts = arr.to_pylist()
        return values, texts, [None] * len(arr) if with_num else None

    x = arr.fill_null(False if value_type == ValueType.BOOL else 0).to_numpy(zero_copy_only=False)
    if value_type in (ValueType.DOUBLE, ValueType.FLOAT):
        valid = valid & ~np.isnan(x)
        payload = x.astype("<f8" if value_type == ValueType.DOUBLE else "<f4").view(np.uint8).reshape(len(x), -1)
        matrix, lengths = _with_tag(tag, payload), np.full(len(x), payload.shape[1] + 1)
        # Feast's text is str() of the proto field, which reads a float32 back as a double.
        py = x.astype(np.float64).tolist()
    elif value_type == ValueType.BOOL:
        matrix, lengths = _with_tag(tag, x.astype(np.uint8)[:, None]), np.full(len(x), 2)
        py = x.tolist()
    else:  # INT64, INT32: varints of the two's complement, sign-extended to 64 bits
        x = x.astype(np.int64)
        if lossy_int64:
            x = _round_through_float64(x)
        varint, varint_len = _varint(x.view(np.uint64))
        matrix, lengths = _with_tag(tag, varint), 1 + varint_len
        py = x.tolist()
    values = _ragged(matrix, np.where(valid, lengths, 0)).to_pylist()
    texts = _with_nulls(list(map(str, py)), valid)
    nums = _with_nulls([float(v) for v in py], valid) if with_num else None
    return values, texts, nums


def _round_through_float64(x: np.ndarray) -> np.ndarray:
    """int(float(v)) per value, as Feast does to an int64 column that pandas turned into float64."""
    f = x.astype(np.float64)
    if np.any(np.abs(f) >= 2.0**63):
        raise ValueError("an int64 value rounds out of the int64 range through float64, as Feast would fail too")
    return f.astype(np.int64)


def _encode_values_with_feast(arr: pa.Array, value_type: ValueType) -> tuple[list, list, list]:
    """Feast's own per-value conversion, after the pandas round trip its materialize makes."""
    numpy_values = pa.Array.from_pandas(arr.to_pandas()).to_numpy(zero_copy_only=False)
    protos = python_values_to_proto_values(numpy_values, value_type)
    values = [p.SerializeToString() for p in protos]
    texts, nums = zip(*(extract_text_and_num(p, True) for p in protos)) if protos else ((), ())
    return values, list(texts), list(nums)


def _entity_key_array(arr: pa.Array, value_type: ValueType, join_key: str, version: int) -> pa.Array:
    """Feast's serialize_entity_key of a single-join-key column, as a binary array."""
    if arr.null_count:
        raise ValueError(f"join key {join_key!r} has nulls; Feast cannot serialize a null entity key")
    n = len(arr)
    if version >= 2 and (value_type, arr.type) in _VECTORIZED and value_type in (ValueType.INT64, ValueType.INT32):
        # Fixed prefix (key count, key name, value type, value size) + the little-endian value.
        width = 8 if value_type == ValueType.INT64 else 4
        prefix = _serialize_one_key(join_key, _value_proto(_PROTO_FIELD[value_type][0], 0), version)[:-width]
        matrix = np.empty((n, len(prefix) + width), dtype=np.uint8)
        matrix[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        matrix[:, len(prefix) :] = arr.to_numpy().astype(f"<i{width}").view(np.uint8).reshape(n, width)
        return _ragged(matrix, np.full(n, matrix.shape[1]))
    if version >= 2 and (value_type, arr.type) in _VECTORIZED and value_type == ValueType.STRING:
        # Fixed prefix up to the value size, then a 4-byte little-endian size and the utf-8 bytes.
        prefix = _serialize_one_key(join_key, ValueProto(string_val=""), version)[:-4]
        payload = arr.cast(pa.large_binary())
        sizes = pc.binary_length(payload).to_numpy().astype("<u4").view(np.uint8).reshape(n, 4)
        matrix = np.empty((n, len(prefix) + 4), dtype=np.uint8)
        matrix[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        matrix[:, len(prefix) :] = sizes
        return _concat(_ragged(matrix, np.full(n, matrix.shape[1])), payload)
    protos = python_values_to_proto_values(arr.to_numpy(zero_copy_only=False), value_type)
    return pa.array([_serialize_one_key(join_key, p, version) for p in protos], pa.large_binary())


def _serialize_one_key(join_key: str, value: ValueProto, version: int) -> bytes:
    """Feast's serialization of one single-key entity key."""
    return serialize_entity_key(
        EntityKeyProto(join_keys=[join_key], entity_values=[value]), entity_key_serialization_version=version
    )


def _local_time_is_utc() -> bool:
    """Whether this process's local time zone is UTC all year round."""
    return time.timezone == 0 and (not time.daylight or time.altzone == 0)


def _sqlite_timestamps(arr: pa.Array) -> list:
    """Timestamps as Feast's sqlite adapter stores them: int(naive_utc_datetime.timestamp())."""
    if not pa.types.is_timestamp(arr.type):
        raise TypeError(f"timestamp column has type {arr.type}, expected a timestamp")
    valid = _valid_mask(arr)
    raw = arr.cast(pa.int64()).fill_null(0).to_numpy()
    # Feast goes through datetime, which keeps microseconds (flooring nanoseconds).
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}[arr.type.unit]
    micros = raw // 1_000 if arr.type.unit == "ns" else raw * scale
    if _local_time_is_utc():
        # int() truncates toward zero, also before 1970.
        seconds = np.where(micros >= 0, micros // 1_000_000, -(-micros // 1_000_000))
        return _with_nulls(seconds.tolist(), valid)
    # The adapter reads the naive UTC datetime as local time; let Python do the same.
    epoch = datetime(1970, 1, 1)
    return _with_nulls([int((epoch + timedelta(microseconds=m)).timestamp()) for m in micros.tolist()], valid)


# ---------------------------------------------------------------- materialization


def materialize_window(
    store: FeatureStore, feature_view_names: list[str] | None, start: datetime, end: datetime
) -> dict[str, int]:
    """Write the latest row per entity with start <= event time <= end, as FeatureStore.materialize does; rows per view."""
    # Feast's offline stores (file/dask and duckdb) both keep the end bound inclusive, so this
    # does too. Like Feast, it records the interval in the registry afterwards, so that
    # materialize_incremental continues from `end`.
    if not isinstance(store.config.online_store, LakehouseSqliteOnlineStoreConfig):
        raise TypeError(
            f"materialize_window needs online_store type {STORE_TYPE!r}, "
            f"got {store.config.online_store.type!r}; set it in feature_store.yaml"
        )
    online_store = store._get_provider().online_store
    if not isinstance(online_store, LakehouseSqliteOnlineStore):
        raise TypeError(f"the provider's online store is {type(online_store).__name__}, not LakehouseSqliteOnlineStore")
    start, end = make_tzaware(start), make_tzaware(end)
    if start > end:
        raise ValueError(f"start {start} is after end {end}")

    if feature_view_names is None:
        views = [fv for fv in store.list_feature_views() if fv.online]
    else:
        views = [store.get_feature_view(name) for name in feature_view_names]
    written: dict[str, int] = {}
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # naive Parquet timestamps are UTC, as in Feast
        con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = {_sql_string(str(Path(tempfile.gettempdir()) / 'lakehouse_duckdb'))}")
        # sqlite is the bottleneck: one DuckDB thread leaves the other core to the encoder and
        # uses less memory, at no cost in wall time.
        con.execute("SET threads = 1")
        for fv in views:
            written[fv.name] = _materialize_view(store, online_store, con, fv, start, end) if fv.online else 0
            store.registry.apply_materialization(fv, store.project, start, end)
    finally:
        con.close()
    return written


def _materialize_view(
    store: FeatureStore,
    online_store: LakehouseSqliteOnlineStore,
    con: duckdb.DuckDBPyConnection,
    fv: FeatureView,
    start: datetime,
    end: datetime,
) -> int:
    """Select the latest row per entity of one view with DuckDB and stream it into the online store."""
    source = fv.batch_source
    if not isinstance(source, FileSource) or not isinstance(source.file_format or ParquetFormat(), ParquetFormat):
        raise TypeError(
            f"feature view {fv.name!r}: materialize_window reads Parquet FileSources only, got {type(source).__name__}"
        )
    if getattr(fv, "feature_transformation", None) or getattr(fv, "aggregations", None):
        raise NotImplementedError(
            f"feature view {fv.name!r} has a transformation or aggregation; use FeatureStore.materialize"
        )
    if len(fv.entity_columns) != 1:
        raise NotImplementedError(f"feature view {fv.name!r} needs exactly one join key, has {len(fv.entity_columns)}")

    join_key = fv.entity_columns[0].name
    key_type = fv.entity_columns[0].dtype.to_value_type()
    ts, created = source.timestamp_field, source.created_timestamp_column or None
    source_name = {v: k for k, v in (source.field_mapping or {}).items()}  # output name -> Parquet column
    outputs = [join_key, *(f.name for f in fv.features), ts, *([created] if created else [])]
    select = ", ".join(f"{_q(source_name.get(c, c))} AS {_q(c)}" for c in dict.fromkeys(outputs))
    # Feast sorts by event then created timestamp, descending, and keeps the first row per
    # entity (pandas puts null created timestamps last); exact ties are left to an unstable
    # sort there, here the first row in file order wins.
    order = f"{_q(ts)} DESC" + (f", {_q(created)} DESC NULLS LAST" if created else "")
    windowed = f"""
        SELECT {select}, filename AS __file, file_row_number AS __row
        FROM read_parquet({_parquet_glob(store, source)}, filename = true, file_row_number = true)
        WHERE {_q(source_name.get(ts, ts))} >= $start AND {_q(source_name.get(ts, ts))} <= $end
    """
    deduped = f"""
        SELECT * EXCLUDE (__file, __row) FROM ({windowed})
        QUALIFY row_number() OVER (PARTITION BY {_q(join_key)} ORDER BY {order}, __file, __row) = 1
    """
    params = {"start": start, "end": end}
    lossy = _lossy_int64_columns(con, windowed, params, fv)
    # Ordering by the serialized key's bytes makes the sqlite index inserts appends.
    sort = _storage_order_sql(join_key, key_type, store.config.entity_key_serialization_version)
    reader = con.sql(deduped + (f" ORDER BY {sort}" if sort else ""), params=params).to_arrow_reader(CHUNK_ROWS)
    return online_store.write_arrow(store.config, fv, reader, join_key, ts, created, lossy_int64_columns=lossy)


def _lossy_int64_columns(con: duckdb.DuckDBPyConnection, windowed: str, params: dict, fv: FeatureView) -> list[str]:
    """Int64 features that Feast's pandas round trip rounds: a null makes the column float64."""
    # Feast converts the window's rows to pandas before it picks the latest ones, so a null in
    # any row of the window counts. Only values beyond 2**53 change, so only columns also
    # holding such a value are listed.
    names = [f.name for f in fv.features if f.dtype.to_value_type() == ValueType.INT64]
    if not names:
        return []
    bound = _FLOAT64_EXACT_INT
    checks = ", ".join(f"bool_or({_q(n)} IS NULL) AND bool_or({_q(n)} NOT BETWEEN -{bound} AND {bound})" for n in names)
    flags = con.sql(f"SELECT {checks} FROM ({windowed})", params=params).fetchall()[0]
    return [n for n, lossy in zip(names, flags) if lossy]


def _storage_order_sql(join_key: str, value_type: ValueType, version: int) -> Optional[str]:
    """DuckDB ORDER BY terms that sort rows like their serialized entity keys sort as bytes."""
    if version < 2:
        return None
    if value_type in (ValueType.INT64, ValueType.INT32):
        width, sql_type = (8, "BIGINT") if value_type == ValueType.INT64 else (4, "INTEGER")
        col = f"CAST({_q(join_key)} AS {sql_type})"
        # Little-endian bytes: the least significant byte comes first.
        return ", ".join(f"(({col} >> {8 * i}) & 255)" for i in range(width))
    if value_type == ValueType.STRING:
        utf8 = f"encode(CAST({_q(join_key)} AS VARCHAR))"
        # The 4-byte little-endian size comes before the bytes.
        return ", ".join([*(f"((octet_length({utf8}) >> {8 * i}) & 255)" for i in range(4)), utf8])
    return None


def _parquet_glob(store: FeatureStore, source: FileSource) -> str:
    """SQL literal of the source's Parquet file, or of every Parquet file under its directory."""
    path = Path(source.path)
    if not path.is_absolute() and store.config.repo_path is not None:
        path = Path(store.config.repo_path) / path
    if path.is_dir():
        path = path / "**" / "*.parquet"
    return _sql_string(str(path))


def _sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _q(identifier: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + identifier.replace('"', '""') + '"'


__all__ = [
    "LakehouseSqliteOnlineStore",
    "LakehouseSqliteOnlineStoreConfig",
    "materialize_window",
]
