"""The lakehouse sqlite online store writes exactly what `feast materialize` writes."""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, String

from lakehouse.feature_store import sqlite_online_store
from lakehouse.feature_store.sqlite_online_store import materialize_window

PROJECT = "lh"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
START, END = T0 + timedelta(days=1), T0 + timedelta(days=3)
ENTITY_IDS = list(range(1, 46))  # 41..45 have no rows at all
BIG = 2**53 + 1  # not representable as float64


def _main_rows() -> list[dict]:
    """Several rows per entity around the window, every dtype, nulls; no two rows of an entity tie."""
    rnd = random.Random(7)
    rows = []
    for e in range(1, 41):
        for r in range(4):
            # Distinct minute offsets keep an entity's event timestamps distinct.
            ts = T0 + timedelta(hours=rnd.randrange(0, 24 * 5), minutes=r)
            null = rnd.random() < 0.2
            rows.append(
                {
                    "customer_id": e,
                    "event_timestamp": ts,
                    "f64": None if null else rnd.choice([rnd.uniform(-1e6, 1e6), 0.0, -0.0, 0.1, float("nan")]),
                    "f32": None if rnd.random() < 0.2 else rnd.choice([rnd.uniform(-10, 10), 0.0, 0.1]),
                    "i64": None if rnd.random() < 0.2 else rnd.choice([rnd.randrange(-1000, 1000), BIG, -BIG]),
                    "i64_big": rnd.choice([2**63 - 1, -(2**63), rnd.randrange(-(2**40), 2**40)]),
                    "i32": None if rnd.random() < 0.2 else rnd.choice([rnd.randrange(-300, 300), 2**31 - 1, -(2**31)]),
                    "s": None if rnd.random() < 0.2 else rnd.choice(["", "a", "é" * 70, f"id-{e}-{r}"]),
                    "b": None if rnd.random() < 0.2 else rnd.random() < 0.5,
                }
            )
    fixed = {  # entity -> (event timestamps): the window's edges and its outside
        1: [START - timedelta(seconds=1), T0],  # only before the window
        2: [END + timedelta(seconds=1), END + timedelta(days=1)],  # only after it
        3: [START, END],  # both bounds are inclusive in Feast: END wins
        4: [START + timedelta(hours=1), END + timedelta(hours=1)],  # the later row is outside
        5: [END - timedelta(hours=1)],  # latest row is all nulls
    }
    rows = [row for row in rows if row["customer_id"] not in fixed]
    for e, stamps in fixed.items():
        for i, ts in enumerate(stamps):
            rows.append(
                {
                    "customer_id": e,
                    "event_timestamp": ts,
                    "f64": 1.0 + i,
                    "f32": 2.0,
                    "i64": BIG,
                    "i64_big": 1000 * e + i,
                    "i32": 3,
                    "s": f"e{e}r{i}",
                    "b": True,
                }
            )
    rows[-1].update(f64=float("nan"), f32=None, i64=None, i32=None, s=None, b=None)
    return rows


def _created_rows() -> list[dict]:
    """Rows whose latest event timestamp repeats, told apart by the created timestamp; columns renamed."""
    rows = []
    for e in range(1, 21):
        ts = START + timedelta(hours=e)
        for r, created in enumerate([ts + timedelta(minutes=5), ts + timedelta(minutes=9), None]):
            rows.append({"cust": e, "ts": ts, "created": created, "x_raw": e + r / 10, "y": f"{e}:{r}"})
        rows.append(
            {"cust": e, "ts": ts - timedelta(hours=1), "created": ts + timedelta(days=1), "x_raw": -1.0, "y": "old"}
        )
    return rows


MAIN_SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("f64", pa.float64()),
        ("f32", pa.float32()),
        ("i64", pa.int64()),
        ("i64_big", pa.int64()),
        ("i32", pa.int32()),
        ("s", pa.string()),
        ("b", pa.bool_()),
    ]
)
CREATED_SCHEMA = pa.schema(
    [
        ("cust", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("created", pa.timestamp("us")),
        ("x_raw", pa.float64()),
        ("y", pa.string()),
    ]
)


def _definitions(data_dir: Path) -> list:
    """The entity and two feature views over the two Parquet files."""
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    main = FeatureView(
        name="fv_all",
        entities=[customer],
        ttl=timedelta(hours=1),  # materialize ignores the ttl: rows days older still count
        schema=[
            Field(name="customer_id", dtype=Int64),
            Field(name="f64", dtype=Float64),
            Field(name="f32", dtype=Float32),
            Field(name="i64", dtype=Int64),
            Field(name="i64_big", dtype=Int64),
            Field(name="i32", dtype=Int32),
            Field(name="s", dtype=String),
            Field(name="b", dtype=Bool),
        ],
        source=FileSource(path=str(data_dir / "main.parquet"), timestamp_field="event_timestamp"),
    )
    created = FeatureView(
        name="fv_created",
        entities=[customer],
        schema=[Field(name="customer_id", dtype=Int64), Field(name="x", dtype=Float64), Field(name="y", dtype=String)],
        source=FileSource(
            path=str(data_dir / "created.parquet"),
            timestamp_field="ts",
            created_timestamp_column="created",
            field_mapping={"cust": "customer_id", "x_raw": "x"},
        ),
    )
    return [customer, main, created]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """The two Parquet sources."""
    d = tmp_path_factory.mktemp("feast_data")
    pq.write_table(pa.Table.from_pylist(_main_rows(), MAIN_SCHEMA), d / "main.parquet")
    pq.write_table(pa.Table.from_pylist(_created_rows(), CREATED_SCHEMA), d / "created.parquet")
    return d


def _store(repo: Path, data_dir: Path, online_type: str, definitions: list | None = None) -> FeatureStore:
    """A Feast repo in `repo` with the definitions applied."""
    repo.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=str(repo / "registry.db"),
        online_store={"type": online_type, "path": str(repo / "online.db")},
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=repo,
    )
    store = FeatureStore(config=config)
    store.apply(definitions or _definitions(data_dir))
    return store


@pytest.fixture(scope="module")
def feast_store(tmp_path_factory, data_dir) -> FeatureStore:
    """Feast's own materialize into Feast's sqlite store: the reference."""
    store = _store(tmp_path_factory.mktemp("feast_repo"), data_dir, "sqlite")
    store.materialize(START, END)
    return store


@pytest.fixture(scope="module")
def lakehouse_store(tmp_path_factory, data_dir) -> tuple[FeatureStore, dict]:
    """materialize_window into the lakehouse store, and what it returned."""
    store = _store(tmp_path_factory.mktemp("lake_repo"), data_dir, sqlite_online_store.STORE_TYPE)
    with pytest.MonkeyPatch.context() as patch:
        # Several batches, each with full multi-entity statements and a remainder.
        patch.setattr(sqlite_online_store, "CHUNK_ROWS", 20)
        return store, materialize_window(store, None, START, END)


def _online(store: FeatureStore) -> dict:
    """Every feature of both views for every entity id, with event timestamps."""
    refs = [f"fv_all:{f}" for f in ("f64", "f32", "i64", "i64_big", "i32", "s", "b")] + ["fv_created:x", "fv_created:y"]
    response = store.get_online_features(refs, [{"customer_id": e} for e in ENTITY_IDS])
    return response.to_dict(include_event_timestamps=True)


def _table_rows(store: FeatureStore, view: str) -> list[tuple]:
    """All rows of a view's online table, every column."""
    with sqlite3.connect(store.config.online_store.path) as conn:
        return sorted(conn.execute(f'SELECT * FROM "{PROJECT}_{view}"').fetchall(), key=repr)


def _expected_latest() -> dict[int, dict]:
    """Latest in-window main row per entity, computed without Feast."""
    latest: dict[int, dict] = {}
    for row in _main_rows():
        if START <= row["event_timestamp"] <= END:
            best = latest.get(row["customer_id"])
            if best is None or row["event_timestamp"] > best["event_timestamp"]:
                latest[row["customer_id"]] = row
    return latest


def test_materialize_window_matches_feast(feast_store, lakehouse_store):
    store, written = lakehouse_store
    assert _online(store) == _online(feast_store)
    for view in ("fv_all", "fv_created"):
        assert _table_rows(store, view) == _table_rows(feast_store, view)
    assert written == {"fv_all": len(_expected_latest()), "fv_created": 20}


def test_window_and_latest_row(lakehouse_store):
    store, _ = lakehouse_store
    online = _online(store)
    expected = _expected_latest()
    assert 1 not in expected and 2 not in expected
    for i, e in enumerate(ENTITY_IDS):
        row = expected.get(e)
        assert online["i64_big"][i] == (row["i64_big"] if row else None)
    at = {e: i for i, e in enumerate(ENTITY_IDS)}
    assert online["s"][at[3]] == "e3r1"  # the row exactly at END
    assert online["s"][at[4]] == "e4r0"  # not the later row outside the window
    assert [online[f][at[5]] for f in ("f64", "f32", "i64", "i32", "s", "b")] == [None] * 6  # nulls, NaN
    assert online["i64"][at[3]] == BIG - 1  # Feast's pandas round trip rounds int64 through float64
    assert online["y"][:20] == [f"{e}:1" for e in range(1, 21)]  # the latest created timestamp wins
    assert online["x"][0] == 1.1  # read through field_mapping
    assert _table_rows(store, "fv_all")[0][-1] is None  # no created timestamp column


def test_online_read_answers_like_feasts_sqlite_read(lakehouse_store):
    """The overridden read and the all-views read return what Feast's own sqlite read returns, key for key."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

    store, _ = lakehouse_store
    provider = store._get_provider()
    online_store = provider.online_store
    assert isinstance(online_store, sqlite_online_store.LakehouseSqliteOnlineStore)
    ids = [*ENTITY_IDS, 3, 45, 3]  # absent ids and repeats too
    keys = [EntityKeyProto(join_keys=["customer_id"], entity_values=[ValueProto(int64_val=e)]) for e in ids]
    views = [store.get_feature_view(name) for name in ("fv_all", "fv_created")]
    reference = [SqliteOnlineStore.online_read(online_store, store.config, view, keys) for view in views]
    assert [online_store.online_read(store.config, view, keys) for view in views] == reference
    assert online_store.online_read_views(store.config, views, keys) == reference
    assert sum(hit is not None for _, hit in reference[0]) > 30 and reference[0][-6] == (None, None)


def test_online_read_keeps_feasts_time_when_an_entitys_rows_disagree(tmp_path, data_dir):
    """Feast answers with the time of the entity's last written row (it reads them in rowid order); so do we."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey as EntityKeyProto
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto

    store = _store(tmp_path, data_dir, sqlite_online_store.STORE_TYPE)
    materialize_window(store, ["fv_all"], START, END)
    with sqlite3.connect(store.config.online_store.path) as conn:  # one feature of every entity written later
        conn.execute(f'UPDATE "{PROJECT}_fv_all" SET event_ts = event_ts + 3600 WHERE feature_name = "b"')
        conn.execute(f'UPDATE "{PROJECT}_fv_all" SET event_ts = event_ts - 7200 WHERE feature_name = "s"')
    online_store = store._get_provider().online_store
    view = store.get_feature_view("fv_all")
    keys = [EntityKeyProto(join_keys=["customer_id"], entity_values=[ValueProto(int64_val=e)]) for e in ENTITY_IDS]
    reference = SqliteOnlineStore.online_read(online_store, store.config, view, keys)
    assert online_store.online_read(store.config, view, keys) == reference
    assert any(hit is not None for _, hit in reference)


def test_feast_materialize_through_lakehouse_store(tmp_path, data_dir, feast_store):
    store = _store(tmp_path, data_dir, sqlite_online_store.STORE_TYPE)
    store.materialize(START, END)  # Feast's pipeline, ending in the overridden online_write_batch
    assert _online(store) == _online(feast_store)
    for view in ("fv_all", "fv_created"):
        assert _table_rows(store, view) == _table_rows(feast_store, view)


def test_online_write_batch_repeated_key_keeps_last(tmp_path, data_dir):
    """Like Feast's row-by-row write, the last of two rows for one entity wins."""
    from feast.infra.online_stores.sqlite import SqliteOnlineStore
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["customer_id"], entity_values=[Value(int64_val=9)])
    data = [(key, {"f64": Value(double_val=v), "s": Value(string_val=str(v))}, START, None) for v in (1.0, 2.0)]
    rows = {}
    for name, online_type in [("feast", "sqlite"), ("ours", sqlite_online_store.STORE_TYPE)]:
        store = _store(tmp_path / name, data_dir, online_type)
        online_store = store._get_provider().online_store
        assert isinstance(online_store, sqlite_online_store.LakehouseSqliteOnlineStore) == (name == "ours")
        assert isinstance(online_store, SqliteOnlineStore)
        online_store.online_write_batch(store.config, store.get_feature_view("fv_all"), data, None)
        rows[name] = _table_rows(store, "fv_all")
    assert rows["ours"] == rows["feast"]
    assert [r[3] for r in rows["ours"]] == ["2.0", "2.0"]


def test_second_window_upserts_like_feast(tmp_path, data_dir):
    feast_ref = _store(tmp_path / "feast", data_dir, "sqlite")
    ours = _store(tmp_path / "ours", data_dir, sqlite_online_store.STORE_TYPE)
    for start, end in [(START, END), (END, END + timedelta(days=2))]:
        feast_ref.materialize(start, end, feature_views=["fv_all"])
        materialize_window(ours, ["fv_all"], start, end)
    assert _online(ours) == _online(feast_ref)
    assert _table_rows(ours, "fv_all") == _table_rows(feast_ref, "fv_all")


def test_int64_rounding_follows_nulls_in_the_window(tmp_path):
    """Feast rounds int64 through float64 when the window has a null, even in a row it then drops."""
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    views = []
    for name, null_at in [("null_in_window", START), ("null_outside", START - timedelta(days=1))]:
        rows = [
            {"customer_id": 1, "event_timestamp": null_at, "i64": None},
            {"customer_id": 1, "event_timestamp": START + timedelta(hours=1), "i64": BIG},
        ]
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, pa.schema([f for f in MAIN_SCHEMA if f.name in rows[0]])), path)
        views.append(
            FeatureView(
                name=name,
                entities=[customer],
                schema=[Field(name="i64", dtype=Int64)],
                source=FileSource(path=str(path), timestamp_field="event_timestamp"),
            )
        )
    feast_ref = _store(tmp_path / "feast", tmp_path, "sqlite", [customer, *views])
    ours = _store(tmp_path / "ours", tmp_path, sqlite_online_store.STORE_TYPE, [customer, *views])
    feast_ref.materialize(START, END)
    materialize_window(ours, None, START, END)
    refs = [f"{v.name}:i64" for v in views]
    expected = feast_ref.get_online_features(refs, [{"customer_id": 1}], full_feature_names=True).to_dict()
    assert expected == {"customer_id": [1], "null_in_window__i64": [BIG - 1], "null_outside__i64": [BIG]}
    assert ours.get_online_features(refs, [{"customer_id": 1}], full_feature_names=True).to_dict() == expected


def test_string_and_int32_join_keys(tmp_path):
    """Other join key types serialize, sort and read back like Feast's."""
    views, entities = [], []
    for name, key_type, arrow_type, ids in [
        ("account", ValueType.STRING, pa.string(), ["", "a", "b", "é" * 80, "z9"]),
        ("shop", ValueType.INT32, pa.int32(), [-(2**31), -1, 0, 7, 2**31 - 1]),
    ]:
        entity = Entity(name=name, join_keys=[f"{name}_id"], value_type=key_type)
        rows = [
            {f"{name}_id": i, "event_timestamp": START + timedelta(minutes=n), "x": float(n)} for n, i in enumerate(ids)
        ]
        schema = pa.schema(
            [(f"{name}_id", arrow_type), ("event_timestamp", pa.timestamp("us", tz="UTC")), ("x", pa.float64())]
        )
        pq.write_table(pa.Table.from_pylist(rows, schema), tmp_path / f"{name}.parquet")
        views.append(
            FeatureView(
                name=f"by_{name}",
                entities=[entity],
                schema=[Field(name="x", dtype=Float64)],
                source=FileSource(path=str(tmp_path / f"{name}.parquet"), timestamp_field="event_timestamp"),
            )
        )
        entities.append(entity)
    feast_ref = _store(tmp_path / "feast", tmp_path, "sqlite", [*entities, *views])
    ours = _store(tmp_path / "ours", tmp_path, sqlite_online_store.STORE_TYPE, [*entities, *views])
    feast_ref.materialize(START, END)
    assert materialize_window(ours, None, START, END) == {"by_account": 5, "by_shop": 5}
    for view in views:
        assert _table_rows(ours, view.name) == _table_rows(feast_ref, view.name)


def test_needs_the_lakehouse_store(feast_store):
    with pytest.raises(TypeError, match="LakehouseSqliteOnlineStore"):
        materialize_window(feast_store, None, START, END)


# ---------------------------------------------------------------- byte-level serialization

ENCODING_CASES = [
    (ValueType.DOUBLE, pa.array([0.0, -0.0, 1.5, None, float("nan"), float("inf"), -1e300, 0.1, 5e-324]), False),
    (ValueType.FLOAT, pa.array([0.0, -0.0, 1.5, None, float("nan"), 0.1, 3.4e38, float("-inf")], pa.float32()), False),
    (ValueType.INT64, pa.array([0, -1, 1, 127, 128, 300, 2**63 - 1, -(2**63), BIG]), False),
    (ValueType.INT64, pa.array([0, -1, 128, None, BIG, -BIG, 2**62]), True),
    (ValueType.INT32, pa.array([0, -1, 1, 127, 128, None, 2**31 - 1, -(2**31)], pa.int32()), False),
    (ValueType.BOOL, pa.array([True, False, None]), False),
    (ValueType.STRING, pa.array(["", "a", None, "é" * 100, "x" * 20000, "日本"]), False),
    (ValueType.STRING, pa.array([None, None], pa.string()), False),
    (ValueType.DOUBLE, pa.array([None, None], pa.float64()), False),
    (ValueType.UNIX_TIMESTAMP, pa.array([T0, None], pa.timestamp("us", tz="UTC")), False),  # Feast's fallback
    (ValueType.DOUBLE, pa.array([1, 2, None], pa.int64()), False),  # not vectorized: Feast's fallback
]


@pytest.mark.parametrize(("value_type", "arr", "lossy"), ENCODING_CASES)
def test_values_serialize_like_feast(value_type, arr, lossy):
    """Value bytes, value_text and value_num equal Feast's conversion of the same column."""
    from feast.infra.online_stores.helpers import extract_text_and_num
    from feast.type_map import python_values_to_proto_values

    # Feast's materialize sees the column after a pandas round trip (an int64 with a null is float64).
    protos = python_values_to_proto_values(
        pa.Array.from_pandas(arr.to_pandas()).to_numpy(zero_copy_only=False), value_type
    )
    expected = (
        [p.SerializeToString() for p in protos],
        *map(list, zip(*(extract_text_and_num(p, True) for p in protos))),
    )
    assert sqlite_online_store._encode_values(arr, value_type, lossy) == tuple(expected)


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize(
    ("value_type", "arr"),
    [
        (ValueType.INT64, pa.array([0, 1, -1, 2**63 - 1, -(2**63), 123456789])),
        (ValueType.INT32, pa.array([0, 1, -1, 2**31 - 1, -(2**31)], pa.int32())),
        (ValueType.STRING, pa.array(["", "abc", "é" * 300])),
        (ValueType.INT64, pa.array([5, 6], pa.int32())),  # not vectorized: Feast's fallback
    ],
)
def test_entity_keys_serialize_like_feast(version, value_type, arr):
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.type_map import python_values_to_proto_values

    expected = [
        serialize_entity_key(
            EntityKey(join_keys=["customer_id"], entity_values=[p]), entity_key_serialization_version=version
        )
        for p in python_values_to_proto_values(arr.to_numpy(zero_copy_only=False), value_type)
    ]
    assert sqlite_online_store._entity_key_array(arr, value_type, "customer_id", version).to_pylist() == expected


def test_timestamps_like_feasts_sqlite_adapter():
    """int(naive_utc.timestamp()): microseconds kept, then truncated toward zero."""
    us = pa.array([0, -1, -1_000_001, 1_704_070_800_999_999, None], pa.timestamp("us", tz="UTC"))
    assert sqlite_online_store._sqlite_timestamps(us) == [0, 0, -1, 1_704_070_800, None]
    ns = pa.array([-1, 1_704_070_800_999_999_999], pa.timestamp("ns"))
    assert sqlite_online_store._sqlite_timestamps(ns) == [0, 1_704_070_800]


def test_feast_imported_after_lakehouse_skips_typeguards_recompile_but_still_applies(tmp_path):
    """lakehouse/__init__ makes @typechecked a no-op before Feast loads (2 s per process); Feast still works."""
    import subprocess
    import sys

    script = (
        "import lakehouse, feast\n"
        "assert 'typeguard' not in feast.FeatureService.__init__.__code__.co_names\n"
        "from lakehouse.demos.churn.domain import CHURN\n"
        "from lakehouse.feature_store.feast_objects import apply_definitions, feature_store\n"
        "from pathlib import Path\n"
        "from lakehouse.paths import LakePaths\n"
        f"paths = LakePaths(Path({str(tmp_path)!r}))\n"
        "print(apply_definitions(feature_store(paths), CHURN, paths)['feature_services'])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "churn_model_v1" in out.stdout
