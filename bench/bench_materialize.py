"""A/B benchmark: Feast's materialize into its sqlite store vs materialize_window into the lakehouse store.

    python bench/bench_materialize.py [--entities 200000] [--features 10] [--pairs 5]

Every run is its own subprocess with a fresh online database, so its peak RSS is its own.
Pairs alternate their order (AB, BA, ...) after one warm-up pair, and each pair's read-back
is checked: the same values for a sample of entities and the same online table, byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "bench"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)
END = START + timedelta(days=30)


def write_features(path: Path, entities: int, features: int, rows_per_entity: int, seed: int = 0) -> int:
    """Write the feature Parquet: float64 features with 1% nulls, timestamps inside the window."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = entities * rows_per_entity
    ids = np.tile(np.arange(entities, dtype=np.int64), rows_per_entity)
    rng.shuffle(ids)
    seconds = rng.integers(0, int((END - START).total_seconds()), n)
    columns = {
        "customer_id": pa.array(ids),
        "event_timestamp": pa.array(
            np.datetime64(START.replace(tzinfo=None), "s") + seconds.astype("timedelta64[s]"),
            pa.timestamp("us", tz="UTC"),
        ),
    }
    for f in range(features):
        values = rng.normal(size=n)
        columns[f"f{f}"] = pa.array(values, mask=rng.random(n) < 0.01)
    pq.write_table(pa.table(columns), path)
    return n


def child(args: argparse.Namespace) -> None:
    """One timed materialization in this process; prints a JSON line."""
    sys.path.insert(0, str(ROOT))
    import resource

    import psutil
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, RepoConfig, ValueType
    from feast.types import Float64, Int64

    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True)
    online_type = (
        "sqlite" if args.child == "A" else "lakehouse.feature_store.sqlite_online_store.LakehouseSqliteOnlineStore"
    )
    config = RepoConfig(
        project=PROJECT,
        provider="local",
        registry=str(run_dir / "registry.db"),
        online_store={"type": online_type, "path": str(run_dir / "online.db")},
        offline_store={"type": args.offline_store},
        entity_key_serialization_version=3,
        repo_path=run_dir,
    )
    store = FeatureStore(config=config)
    customer = Entity(name="customer", join_keys=["customer_id"], value_type=ValueType.INT64)
    view = FeatureView(
        name="features",
        entities=[customer],
        schema=[Field(name="customer_id", dtype=Int64)]
        + [Field(name=f"f{f}", dtype=Float64) for f in range(args.features)],
        source=FileSource(path=args.parquet, timestamp_field="event_timestamp"),
    )
    store.apply([customer, view])
    rss_before = psutil.Process().memory_info().rss

    started = time.perf_counter()
    if args.child in ("A", "C"):
        store.materialize(START, END)
    else:
        from lakehouse.feature_store.sqlite_online_store import materialize_window

        materialize_window(store, None, START, END)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB

    sample_ids = random.Random(1).sample(range(int(args.entities * 1.01)), min(args.sample, args.entities))
    refs = [f"features:f{f}" for f in range(args.features)]
    online = store.get_online_features(refs, [{"customer_id": i} for i in sample_ids]).to_dict(
        include_event_timestamps=True
    )
    table = f'"{PROJECT}_features"'
    with sqlite3.connect(run_dir / "online.db") as conn:
        rows = conn.execute(f"SELECT count(DISTINCT entity_key) FROM {table}").fetchone()[0]
        digest = table_digest(conn, table) if args.digest else None
    shutil.rmtree(run_dir)  # the online databases are large; keep the disk free
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rows": rows,
                "peak_rss": peak,
                "rss_before": rss_before,
                "online": online,
                "digest": digest,
            }
        )
    )


def table_digest(conn: sqlite3.Connection, table: str) -> str:
    """SHA-256 over every column of every row, in key order."""
    h = hashlib.sha256()
    cursor = conn.execute(f"SELECT * FROM {table} ORDER BY entity_key, feature_name")
    while batch := cursor.fetchmany(100_000):
        h.update(repr(batch).encode())
    return h.hexdigest()


def run(kind: str, args: argparse.Namespace, parquet: Path, work: Path, index: int) -> dict:
    """Run one materialization in a fresh subprocess."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--run-dir",
        str(work / f"run-{index}-{kind}"),
        "--parquet",
        str(parquet),
        "--entities",
        str(args.entities),
        "--features",
        str(args.features),
        "--offline-store",
        args.offline_store,
        "--sample",
        str(args.sample),
        *([] if args.digest else ["--no-digest"]),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"  {kind}: {result['seconds']:7.2f} s  peak RSS {result['peak_rss'] / 2**20:7.0f} MB  rows {result['rows']}",
        file=sys.stderr,
        flush=True,
    )
    return result


def machine_info() -> dict:
    """nproc, CPU model and versions."""
    import duckdb
    import pyarrow

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    feast_version = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('feast'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "feast": feast_version,
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "sqlite": sqlite3.sqlite_version,
    }


def report(args: argparse.Namespace, rows_in_file: int, pairs: list[tuple[dict, dict]]) -> str:
    """The markdown table."""
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    speedups = [(pb["rows"] / pb["seconds"]) / (pa["rows"] / pa["seconds"]) for pa, pb in pairs]
    mb = 2**20
    med = statistics.median

    def grown(x: dict) -> int:
        """Peak RSS above the RSS the process had before materializing."""
        return x["peak_rss"] - x["rss_before"]

    info = machine_info()
    lines = [
        f"Materialize {args.entities:,} entities x {args.features} float64 features "
        f"({rows_in_file:,} source rows, offline store `{args.offline_store}`), {len(pairs)} A/B pairs"
        + (" after a warm-up pair." if args.warmup else ", no warm-up."),
        "",
        "| | A: Feast `materialize` -> `sqlite` | B: `materialize_window` -> lakehouse store |",
        "|---|---|---|",
        f"| median seconds | {med(x['seconds'] for x in a):.2f} | {med(x['seconds'] for x in b):.2f} |",
        f"| min / max seconds | {min(x['seconds'] for x in a):.2f} / {max(x['seconds'] for x in a):.2f} "
        f"| {min(x['seconds'] for x in b):.2f} / {max(x['seconds'] for x in b):.2f} |",
        f"| median rows/s | {med(x['rows'] / x['seconds'] for x in a):,.0f} | {med(x['rows'] / x['seconds'] for x in b):,.0f} |",
        f"| median peak RSS (MB, whole process) | {med(x['peak_rss'] for x in a) / mb:,.0f} | {med(x['peak_rss'] for x in b) / mb:,.0f} |",
        f"| median RSS before materializing (MB) | {med(x['rss_before'] for x in a) / mb:,.0f} | {med(x['rss_before'] for x in b) / mb:,.0f} |",
        f"| median peak minus RSS before (MB) | {med(grown(x) for x in a) / mb:,.0f} | {med(grown(x) for x in b) / mb:,.0f} |",
        f"| rows written | {a[0]['rows']:,} | {b[0]['rows']:,} |",
        "",
        f"- speedup (rows/s B / rows/s A, per pair): median **{med(speedups):.2f}x**, "
        f"min {min(speedups):.2f}x, max {max(speedups):.2f}x",
        f"- peak RSS ratio B / A (medians): **{med(x['peak_rss'] for x in b) / med(x['peak_rss'] for x in a):.2f}** "
        f"(of the growth during materialization: {med(grown(x) for x in b) / med(grown(x) for x in a):.2f}; "
        "both processes start at the RSS of importing Feast)",
        f"- identical read-back: {args.sample} sampled entities (incl. absent ones) per pair"
        + (", and the full online table (SHA-256 of every row)" if args.digest else ""),
        f"- machine: nproc {info['nproc']}, CPU {info['cpu']}; Python {info['python']}, feast {info['feast']}, "
        f"duckdb {info['duckdb']}, pyarrow {info['pyarrow']}, sqlite {info['sqlite']}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="allow fewer than 5 pairs")
    parser.add_argument("--rows-per-entity", type=int, default=1, help="source rows per entity (history)")
    parser.add_argument("--offline-store", default="duckdb", help="Feast offline store of the baseline (duckdb, file)")
    parser.add_argument("--sample", type=int, default=1000, help="entities whose read-back is compared")
    parser.add_argument("--no-digest", dest="digest", action="store_false", help="skip the full-table comparison")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false")
    parser.add_argument("--workdir", help="where the Parquet and run directories go (default: a temp dir)")
    parser.add_argument(
        "--feast-path",
        action="store_true",
        help="also run C: Feast's materialize into the lakehouse store (its online_write_batch)",
    )
    parser.add_argument("--child", choices=["A", "B", "C"], help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.pairs < 5 and not args.quick:
        parser.error("use at least 5 pairs, or --quick for fewer")

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_materialize_"))
    work.mkdir(parents=True, exist_ok=True)
    parquet = work / "features.parquet"
    rows_in_file = write_features(parquet, args.entities, args.features, args.rows_per_entity)
    print(f"work dir {work}; {rows_in_file:,} rows in {parquet.name}", file=sys.stderr)
    try:
        if args.warmup:
            print("warm-up pair (not counted)", file=sys.stderr)
            run("A", args, parquet, work, 0)
            run("B", args, parquet, work, 0)
        pairs, feast_path = [], []
        for i in range(1, args.pairs + 1):
            print(f"pair {i}/{args.pairs}", file=sys.stderr)
            order = "AB" if i % 2 else "BA"  # alternate so drift in the machine hits both sides
            results = {kind: run(kind, args, parquet, work, i) for kind in order + ("C" if args.feast_path else "")}
            for kind, other in results.items():
                a = results["A"]
                if a["online"] != other["online"] or a["rows"] != other["rows"] or a["digest"] != other["digest"]:
                    raise SystemExit(f"pair {i}: read-back differs between A and {kind}")
            pairs.append((results["A"], results["B"]))
            feast_path.extend([(results["A"], results["C"])] if args.feast_path else [])
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(report(args, rows_in_file, pairs))
    if feast_path:
        c_speedups = [a["seconds"] / c["seconds"] for a, c in feast_path]
        print(
            f"- C, Feast's `materialize` into the lakehouse store (overridden online_write_batch): median "
            f"{statistics.median(c['seconds'] for _, c in feast_path):.2f} s, speedup over A median "
            f"{statistics.median(c_speedups):.2f}x, median peak RSS "
            f"{statistics.median(c['peak_rss'] for _, c in feast_path) / 2**20:,.0f} MB; identical read-back"
        )


if __name__ == "__main__":
    main()
