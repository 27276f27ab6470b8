"""Serving benchmark: the churn service over HTTP, its Feast lookup and batch scoring, each against a bare baseline.

    python bench/bench_serving.py [--pairs 5] [--requests 2000] [--quick]

Needs a built demo lake (`make demo`); the data root is LAKEHOUSE_DATA_ROOT or data/ of the repo and
is only read (the churn service appends its prediction log there; batch scoring writes into a copy).

1. HTTP: `bentoml serve bentos.churn_service:ChurnService` vs `bentoml serve bench.bare_service:BareService`
   (a constant answer; the goal's baseline) and, for reference, TypedBareService (the same with its media
   type declared, as the churn service declares it), all started the same way; single-customer POST
   /predict_ids at concurrency 1 and 8 from keep-alive http.client connections, one thread each, in this process.
2. Feature lookup, in process: lakehouse.serving.scoring.online_lookup vs FeatureStore.get_online_features(...).to_dict()
   for the same entities (1 and 100 per call), on the data root's online store: with LAKEHOUSE_ONLINE_STORE
   set, the production profile's Redis (materialize the data root into it first, e.g. `lakehouse demo`).
3. Batch scores: lakehouse.serving.batch_scores.batch_score end to end, and its scoring step, vs a bare
   Booster.predict on the model matrix of the same rows.

Each part runs a warm-up, then A/B pairs in alternating order (AB, BA, ...), and reports the median of
the per-pair ratios with min and max. Tables go to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # bento_process: the tests' `bentoml serve` helper

CHURN_SERVICE = "bentos.churn_service:ChurnService"
BARE_SERVICE = "bench.bare_service:BareService"
TYPED_BARE_SERVICE = "bench.bare_service:TypedBareService"
CONCURRENCIES = (1, 8)
med = statistics.median


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def goal(ok: bool) -> str:
    return "pass" if ok else "**miss**"


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """median (min-max) of per-pair values."""
    return f"{fmt.format(med(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return sorted_values[min(len(sorted_values) - 1, max(0, round(q / 100 * len(sorted_values)) - 1))]


# ---------------------------------------------------------------- 1. HTTP


def server_cpu_seconds(pid: int) -> float:
    """User+system CPU of the service process and all its children (the arbiter and the worker)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    except psutil.NoSuchProcess:
        pass
    return total


def client_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, bytes]:
    conn.request("POST", "/predict_ids", body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def load(port: int, ids: list[int], concurrency: int) -> dict[str, Any]:
    """POST one id per request, len(ids) requests split over `concurrency` keep-alive connections."""
    bodies = [json.dumps({"customer_ids": [i]}).encode() for i in ids]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    start = threading.Barrier(concurrency + 1)

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        start.wait()
        for body in bodies[k::concurrency]:
            t0 = time.perf_counter()
            try:
                status, _ = post(conn, body)
            except (OSError, http.client.HTTPException):
                status = -1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            latencies[k].append(time.perf_counter() - t0)
            errors[k] += status != 200
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()  # every connection is open before the clock starts
    cpu0, t0 = client_cpu_seconds(), time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = client_cpu_seconds() - cpu0
    lat = sorted(x * 1000 for xs in latencies for x in xs)
    return {
        "requests": len(lat),
        "errors": sum(errors),
        "seconds": wall,
        "rps": len(lat) / wall,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "client_cores": cpu / wall,
    }


def check_answer(port: int, customer_id: int) -> None:
    """One real answer: the churn service must score a known customer (else we would time errors)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    status, body = post(conn, json.dumps({"customer_ids": [customer_id]}).encode())
    conn.close()
    prediction = json.loads(body)["predictions"][0] if status == 200 else {}
    if "score" not in prediction:
        raise SystemExit(f"churn service did not score customer {customer_id}: {status} {body[:300]!r}")


def bench_http(args: argparse.Namespace, data_root: Path, ids: list[int]) -> dict[str, Any]:
    """Start the services, warm them up, then per pair and concurrency: churn and the bare ones, in turn."""
    from bento_process import ServeProcess, start_serve

    from lakehouse.paths import LakePaths

    logdir = Path(tempfile.mkdtemp(prefix="bench_serving_logs_"))
    services: dict[str, ServeProcess] = {}
    rng = random.Random(7)
    try:
        for name, target in (("churn", CHURN_SERVICE), ("bare", BARE_SERVICE), ("typed", TYPED_BARE_SERVICE)):
            # As `make serve` starts it; the benchmark measures the open service (no API key).
            services[name] = start_serve(LakePaths(data_root), target, log_dir=logdir)
        for name, server in services.items():
            server.wait_ready(timeout=120)
            log(f"{name} service ready on port {server.port}")
        check_answer(services["churn"].port, ids[0])
        for server in services.values():
            load(server.port, rng.choices(ids, k=args.warmup), 8)  # warm caches, thread pools, connections
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for i in range(1, args.pairs + 1):
            order = ("churn", "bare", "typed") if i % 2 else ("typed", "bare", "churn")  # drift hits all
            for c in CONCURRENCIES:
                sample = rng.choices(ids, k=args.requests)  # the same customers for both sides of a pair
                for name in order:
                    server = services[name]
                    cpu0 = server_cpu_seconds(server.proc.pid)
                    r = load(server.port, sample, c)
                    r["server_cores"] = (server_cpu_seconds(server.proc.pid) - cpu0) / r["seconds"]
                    results.setdefault((name, c), []).append(r)
                    log(
                        f"  pair {i}/{args.pairs} c={c} {name:5s}: p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms  "
                        f"{r['rps']:7.0f} req/s  errors {r['errors']}  client {r['client_cores']:.2f} cores  "
                        f"server {r['server_cores']:.2f} cores"
                    )
    finally:
        for server in services.values():
            server.stop()
    shutil.rmtree(logdir, ignore_errors=True)
    return {"results": results}


def report_http(args: argparse.Namespace, http_results: dict[str, Any]) -> list[str]:
    res = http_results["results"]
    lines = [
        f"### Single-customer `POST /predict_ids` through `bentoml serve` ({args.pairs} pairs x {args.requests} "
        f"requests per side and concurrency, after {args.warmup} warm-up requests each)",
        "",
        "| concurrency | metric | churn service | bare service | churn / bare per pair: median (min-max) | goal | |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in CONCURRENCIES:
        churn, bare, typed = res[("churn", c)], res[("bare", c)], res[("typed", c)]
        p50 = [r["p50"] for r in churn]
        p99 = [r["p99"] for r in churn]
        rps_ratio = [a["rps"] / b["rps"] for a, b in zip(churn, bare)]
        p50_goal = ("p50 < 5 ms", goal(med(p50) < 5)) if c == 1 else ("", "")
        p99_goal = ("p99 < 25 ms", goal(med(p99) < 25)) if c == 8 else ("", "")
        lines += [
            f"| {c} | p50 ms | {spread(p50)} | {spread([r['p50'] for r in bare])} "
            f"| {spread([a['p50'] / b['p50'] for a, b in zip(churn, bare)])}x | {p50_goal[0]} | {p50_goal[1]} |",
            f"| {c} | p99 ms | {spread(p99)} | {spread([r['p99'] for r in bare])} "
            f"| {spread([a['p99'] / b['p99'] for a, b in zip(churn, bare)])}x | {p99_goal[0]} | {p99_goal[1]} |",
            f"| {c} | requests/s | {spread([r['rps'] for r in churn], '{:.0f}')} "
            f"| {spread([r['rps'] for r in bare], '{:.0f}')} | **{spread(rps_ratio)}** | >= 0.70 of bare "
            f"| {goal(med(rps_ratio) >= 0.70)} |",
            f"| {c} | requests/s vs the typed bare service | | {spread([r['rps'] for r in typed], '{:.0f}')} "
            f"| {spread([a['rps'] / b['rps'] for a, b in zip(churn, typed)])} | (reference) | |",
            f"| {c} | errors | {sum(r['errors'] for r in churn)} | {sum(r['errors'] for r in bare + typed)} | | 0 "
            f"| {goal(sum(r['errors'] for r in churn + bare + typed) == 0)} |",
            f"| {c} | cores used: server / client | {med(r['server_cores'] for r in churn):.2f} / "
            f"{med(r['client_cores'] for r in churn):.2f} | {med(r['server_cores'] for r in bare):.2f} / "
            f"{med(r['client_cores'] for r in bare):.2f} | | | |",
        ]
    lines += [
        "",
        "- cells: median over pairs of each run's value (min-max); p50/p99 are per run over all its requests; "
        "requests/s = requests / wall time of the run",
        "- load generator: this process, one keep-alive `http.client` connection per thread, on the same 2 cores "
        "as the server (its CPU use is in the cores row)",
        "- bare service: a constant answer, written as BentoML's docs write a service (the goal's baseline); typed "
        "bare service: the same, with its media type declared as the churn service declares it (BentoML otherwise "
        "derives it from a JSON schema on every response), so that ratio is the churn service's own work alone",
    ]
    return lines


# ---------------------------------------------------------------- 2. feature lookup


def time_calls(fn: Callable[[], Any], calls: int) -> float:
    """Median seconds of `calls` calls of fn."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return med(times)


def bench_lookup(args: argparse.Namespace, data_root: Path, ids: list[int]) -> dict[int, list[tuple[float, float]]]:
    """Per batch size: pairs of (median online_lookup time, median bare get_online_features time)."""
    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.feature_store.feast_objects import feature_store
    from lakehouse.paths import LakePaths
    from lakehouse.serving import scoring

    paths = LakePaths(data_root)
    champion = scoring.load_champion(paths, CHURN.name)
    store = feature_store(paths)
    service = store.get_feature_service(champion.feature_service)  # a caller holding the service object
    key = CHURN.entity_key
    rng = random.Random(11)
    out: dict[int, list[tuple[float, float]]] = {}
    for n, calls in ((1, args.lookup_calls), (100, max(5, args.lookup_calls // 10))):
        batches = [rng.sample(ids, n) for _ in range(calls)]

        def lakehouse_side() -> float:
            it = iter(batches)
            return time_calls(lambda: scoring.online_lookup(store, champion, key, next(it)), calls)

        def bare_side() -> float:
            it = iter(batches)
            return time_calls(
                lambda: store.get_online_features(features=service, entity_rows=[{key: i} for i in next(it)]).to_dict(),
                calls,
            )

        lakehouse_side(), bare_side()  # warm-up
        if scoring.online_lookup(store, champion, key, batches[0])[0][0] != {
            f: v[0]
            for f, v in store.get_online_features(features=service, entity_rows=[{key: batches[0][0]}])
            .to_dict()
            .items()
            if f in champion.features
        }:
            raise SystemExit("online_lookup and get_online_features disagree")
        pairs = []
        for i in range(1, args.lookup_pairs + 1):
            if i % 2:
                a = lakehouse_side()
                b = bare_side()
            else:
                b = bare_side()
                a = lakehouse_side()
            pairs.append((a, b))
        out[n] = pairs
        log(
            f"  lookup of {n} entities: online_lookup {med(p[0] for p in pairs) * 1000:.2f} ms, "
            f"get_online_features {med(p[1] for p in pairs) * 1000:.2f} ms"
        )
    return out


def report_lookup(
    args: argparse.Namespace, lookups: dict[int, list[tuple[float, float]]], data_root: Path
) -> list[str]:
    from lakehouse.feature_store.feast_objects import store_locations
    from lakehouse.paths import LakePaths

    lines = [
        f"### Feature lookup in process: `scoring.online_lookup` vs `FeatureStore.get_online_features(...).to_dict()` "
        f"({args.lookup_pairs} pairs; per pair the median of {args.lookup_calls} calls of 1 entity, "
        f"{max(5, args.lookup_calls // 10)} of 100); online store {store_locations(LakePaths(data_root))['online_store']}",
        "",
        "| entities per call | online_lookup ms | get_online_features ms | time ratio per pair: median (min-max) "
        "| goal | |",
        "|---|---|---|---|---|---|",
    ]
    for n, pairs in lookups.items():
        ratios = [a / b for a, b in pairs]
        lines.append(
            f"| {n} | {spread([a * 1000 for a, _ in pairs], '{:.3f}')} "
            f"| {spread([b * 1000 for _, b in pairs], '{:.3f}')} | **{spread(ratios)}x** | <= 1.1x "
            f"| {goal(med(ratios) <= 1.1)} |"
        )
    lines += [
        "",
        "- same entities on both sides, same values (checked); online_lookup also returns each value's "
        "event time (for the service's freshness fields) and reads all the feature service's views at once "
        "(`online_read_views`: one SQL statement in the lakehouse sqlite store, one HMGET per entity on Redis), "
        "with the feature service resolved once per champion; the baseline holds the feature service object "
        "and reads through the same store",
    ]
    return lines


# ---------------------------------------------------------------- 3. batch scores


def copy_for_batch(data_root: Path, work: Path, scale: int = 1) -> Path:
    """What batch_score reads (features, champion pointer, model store) in a scratch root it may write to.

    scale > 1 repeats the active entities and their newest feature rows `scale` times under new ids (the
    same feature distributions, `scale` times the rows), for the second size BENCHMARKING.md asks for.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import feather

    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.paths import LakePaths

    for part in ("lake/features", "registry", "bentoml/models"):
        shutil.copytree(data_root / part, work / part)
    if scale > 1:
        key, paths = CHURN.entity_key, LakePaths(work)
        for name in [f"_{CHURN.name}_active", *(v.name for v in CHURN.feature_views)]:
            table = feather.read_table(paths.latest(name))
            step, column = pc.max(table[key]).as_py() + 1, table.schema.get_field_index(key)
            # Blocks of ever larger ids keep the tables in key order, as the features step writes them.
            blocks = [table.set_column(column, key, pc.add(table[key], k * step)) for k in range(scale)]
            feather.write_feather(pa.concat_tables(blocks), paths.latest(name), compression="uncompressed")
    return work


def bench_batch(args: argparse.Namespace, data_root: Path, scale: int = 1) -> dict[str, Any]:
    """Pairs of (batch_score end to end with its timings, bare Booster.predict) on the same rows."""
    import numpy as np
    import polars as pl

    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.ml.training import model_matrix
    from lakehouse.paths import LakePaths
    from lakehouse.serving import batch_scores, scoring

    work = Path(tempfile.mkdtemp(prefix="bench_serving_batch_"))
    try:
        paths = LakePaths(copy_for_batch(data_root, work / "data", scale))
        champion = scoring.load_champion(paths, CHURN.name)
        model = champion.model
        matrix = model_matrix(batch_scores.latest_features(paths, CHURN), model.features, model.categories)

        def bare() -> float:
            t0 = time.perf_counter()
            # The model's own thread count, as batch_score uses: LightGBM's predict ignores the trained params.
            model.booster.predict(matrix, num_iteration=model.best_iteration, num_threads=model.num_threads)
            return time.perf_counter() - t0

        def end_to_end() -> dict[str, Any]:
            t0 = time.perf_counter()
            result = batch_scores.batch_score(paths, CHURN)
            return {**result, "seconds": time.perf_counter() - t0}

        first = end_to_end()  # warm-up (imports, page cache), and a check: same rows, same scores as bare
        bare()
        written = pl.read_parquet(first["path"])
        if written.height != len(matrix) or not np.allclose(
            written["score"].to_numpy(),
            model.booster.predict(matrix, num_iteration=model.best_iteration, num_threads=model.num_threads),
            rtol=1e-12,
            atol=0,
        ):
            raise SystemExit("batch_score and the bare Booster.predict disagree")
        pairs = []
        for i in range(1, args.batch_pairs + 1):
            if i % 2:
                a = end_to_end()
                b = bare()
            else:
                b = bare()
                a = end_to_end()
            pairs.append((a, b))
            log(
                f"  batch pair {i}/{args.batch_pairs}: batch_score {a['seconds'] * 1000:.0f} ms (load "
                f"{a['load_seconds'] * 1000:.0f}, score {a['score_seconds'] * 1000:.0f}, write {a['write_seconds'] * 1000:.0f}), "
                f"bare predict {b * 1000:.0f} ms"
            )
        return {
            "rows": len(matrix),
            "pairs": pairs,
            "trees": model.best_iteration,
            "num_threads": model.num_threads,
            "scale": scale,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report_batch(args: argparse.Namespace, batch: dict[str, Any]) -> list[str]:
    rows, pairs = batch["rows"], batch["pairs"]
    e2e = [b / a["seconds"] for a, b in pairs]  # throughput ratio = bare time / our time
    step = [b / a["score_seconds"] for a, b in pairs]
    return [
        f"### Batch scores: {rows:,} active customers"
        + (f" (the demo's, repeated {batch['scale']}x under new ids)" if batch["scale"] > 1 else "")
        + f", {batch['trees']} trees, LightGBM num_threads="
        f"{batch['num_threads']} (the model's own, both sides); {len(pairs)} pairs after a warm-up",
        "",
        "| | rows/s | vs bare `Booster.predict` rows/s per pair: median (min-max) | goal | |",
        "|---|---|---|---|---|",
        f"| `batch_score` end to end (read features, score, write Parquet) "
        f"| {spread([rows / a['seconds'] for a, _ in pairs], '{:,.0f}')} | **{spread(e2e)}** | >= 0.80 "
        f"| {goal(med(e2e) >= 0.8)} |",
        f"| its scoring step (`scoring.predict` on the feature frame) "
        f"| {spread([rows / a['score_seconds'] for a, _ in pairs], '{:,.0f}')} | **{spread(step)}** | >= 0.80 "
        f"| {goal(med(step) >= 0.8)} |",
        f"| bare `Booster.predict` on the prebuilt model matrix | {spread([rows / b for _, b in pairs], '{:,.0f}')} "
        f"| 1 | | |",
        "",
        "- where `batch_score`'s time goes (median ms): "
        + ", ".join(
            f"{part} {med(a[f'{part}_seconds'] for a, _ in pairs) * 1000:.1f}" for part in ("load", "score", "write")
        )
        + " (load: the champion's SHA-checked text, then LightGBM parsing it while the features are read)",
        "- checked: the written scores equal the bare Booster.predict on the same rows",
    ]


# ---------------------------------------------------------------- main


def machine_info() -> str:
    import importlib.metadata as md

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = ", ".join(f"{p} {md.version(p)}" for p in ("bentoml", "feast", "lightgbm", "duckdb", "polars"))
    return f"nproc {len(os.sched_getaffinity(0))}, CPU {cpu}; Python {platform.python_version()}, {versions}"


def active_ids(data_root: Path, limit: int = 2000) -> list[int]:
    """Customer ids the online store knows (the active customers of the last batch scores)."""
    import polars as pl

    from lakehouse.paths import LakePaths

    ids = pl.read_parquet(LakePaths(data_root).batch_scores("churn"), columns=["customer_id"])
    ids = sorted(ids["customer_id"].to_list())
    return random.Random(3).sample(ids, min(limit, len(ids)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="HTTP A/B pairs (per concurrency)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per side, pair and concurrency")
    parser.add_argument("--warmup", type=int, default=500, help="warm-up requests per service")
    parser.add_argument("--lookup-pairs", type=int, default=11)
    parser.add_argument("--lookup-calls", type=int, default=200, help="single-entity calls per side and pair")
    parser.add_argument("--batch-pairs", type=int, default=7)
    parser.add_argument(
        "--batch-scales",
        type=int,
        nargs="+",
        default=[1, 10],
        help="batch sizes as multiples of the demo's active customers",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few pairs and requests")
    parser.add_argument("--only", choices=["http", "lookup", "batch"], action="append", help="run only these parts")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.requests, args.warmup = 2, 200, 100
        args.lookup_pairs, args.lookup_calls, args.batch_pairs = 2, 20, 2
    elif min(args.pairs, args.lookup_pairs, args.batch_pairs) < 5:
        parser.error("use at least 5 pairs everywhere, or --quick")
    parts = args.only or ["http", "lookup", "batch"]

    data_root = Path(os.environ.get("LAKEHOUSE_DATA_ROOT") or ROOT / "data").resolve()
    if not (data_root / "registry" / "churn.json").exists():
        raise SystemExit(f"no churn champion under {data_root}; run `make demo` first")
    ids = active_ids(data_root)
    log(f"data root {data_root}; {len(ids)} customer ids sampled from the batch scores")

    lines = [f"## Serving (`bench/bench_serving.py{' --quick' if args.quick else ''}`)", ""]
    if "http" in parts:
        log("HTTP: churn vs bare service")
        lines += report_http(args, bench_http(args, data_root, ids)) + [""]
    if "lookup" in parts:
        log("feature lookup: online_lookup vs get_online_features")
        lines += report_lookup(args, bench_lookup(args, data_root, ids), data_root) + [""]
    if "batch" in parts:
        for scale in args.batch_scales:
            log(f"batch scores at {scale}x the demo's rows: batch_score vs Booster.predict")
            lines += report_batch(args, bench_batch(args, data_root, scale)) + [""]
    lines.append(f"- machine: {machine_info()}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
