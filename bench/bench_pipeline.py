"""Benchmarks of the lake pipeline: feature build vs one hand-written DuckDB query, and 1M vs 10M usage rows.

    python bench/bench_pipeline.py [--pairs 5] [--scale-customers 5000,50000] [--days 200]

1. Feature build (baseline: one DuckDB query over the bronze batches that types, deduplicates and
   computes the same feature tables; ours: the silver, spine and feature-view steps the assets run).
   Same data, same process, A/B pairs alternating order after a warm-up; the outputs are compared.
2. Scale: ingestion + validation + silver + features, each size in its own subprocess so its peak RSS
   (ru_maxrss from wait4) is its own. Reports the time ratio between sizes (linear = the row ratio).
DuckDB and polars use all cores (2 here); the numbers are for this machine only as ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lakehouse.demos.churn.domain import CHURN  # noqa: E402
from lakehouse.paths import LakePaths  # noqa: E402


def generate_once(root: Path, customers: int, days: int) -> None:
    """Clean demo data (no malformed rows, so both paths see the same rows), cached by size."""
    from lakehouse.demos.churn.generator import GeneratorConfig, generate

    if (root / "landing").exists():
        return
    generate(root / "landing", GeneratorConfig(customers=customers, days=days, start=date(2024, 1, 1), seed=1))


def run_pipeline(root: Path) -> dict[str, float]:
    """Ingest, validate, build silver and features under `root`; seconds per stage."""
    from lakehouse.lake.ingestion import ingest_source
    from lakehouse.lake.validation import validate_new_batches

    paths = LakePaths(root)
    times: dict[str, float] = {}

    def stage(name, fn):
        started = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - started

    stage("ingestion", lambda: [ingest_source(paths, s) for s in CHURN.sources])
    stage("validation", lambda: [validate_new_batches(paths, s, CHURN.max_quarantine_rate) for s in CHURN.sources])
    stage("features", lambda: build_features(paths))
    return times


def build_features(paths: LakePaths) -> None:
    """What the silver, spine and feature-view assets do, in one call."""
    from lakehouse.lake.feature_tables import build_feature_view, build_spine
    from lakehouse.lake.silver import build_silver

    for s in CHURN.sources:
        build_silver(paths, s)
    build_spine(paths, CHURN)
    for view in CHURN.feature_views:
        build_feature_view(paths, CHURN, view)


SQL_TYPES = {
    "int64": "BIGINT",
    "float64": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
}


def baseline_query(paths: LakePaths) -> str:
    """One DuckDB query from bronze to all four feature tables (wide), as a user would hand-write it."""
    ctes = []
    for s in CHURN.sources:
        cols = ", ".join(f'TRY_CAST("{c.name}" AS {SQL_TYPES[c.dtype]}) AS "{c.name}"' for c in s.columns)
        key = ", ".join(s.silver_key)
        order = (f"{s.version_column} DESC, " if s.version_column else "") + "_row DESC"
        ctes.append(
            f"{s.name} AS (SELECT {cols} FROM read_parquet('{paths.bronze(s.name)}/*.parquet', "
            f"union_by_name = true) QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {order}) = 1)"
        )
    ctes.append(f"spine AS ({CHURN.spine_sql})")
    for v in CHURN.feature_views:
        ctes.append(f"{v.name} AS ({v.sql})")
    first, *rest = CHURN.feature_views
    select = ", ".join([f"{first.name}.*"] + [f"{v.name}.{f.name}" for v in rest for f in v.features])
    joins = " ".join(f"JOIN {v.name} USING (customer_id, event_timestamp)" for v in rest)
    return f"WITH {', '.join(ctes)} SELECT {select} FROM {first.name} {joins}"


def run_baseline(paths: LakePaths, out: Path) -> None:
    import duckdb

    with duckdb.connect() as con:
        con.execute(f"COPY ({baseline_query(paths)}) TO '{out}' (FORMAT parquet)")


def outputs_match(paths: LakePaths, baseline: Path) -> bool:
    """The baseline's wide table equals the four feature tables joined."""
    import polars as pl

    ours = None
    for v in CHURN.feature_views:
        t = pl.read_parquet(paths.features(v.name))
        ours = t if ours is None else ours.join(t, on=["customer_id", "event_timestamp"])
    theirs = pl.read_parquet(baseline).select(ours.columns)
    keys = ["customer_id", "event_timestamp"]
    return ours.sort(keys).equals(theirs.sort(keys))


def feature_build_pairs(paths: LakePaths, pairs: int) -> dict:
    out = paths.root / "baseline.parquet"
    timings: list[tuple[float, float]] = []
    for i in range(pairs + 1):  # the first pair warms caches and is dropped
        order = ("A", "B") if i % 2 == 0 else ("B", "A")
        t = {}
        for kind in order:
            started = time.perf_counter()
            run_baseline(paths, out) if kind == "A" else build_features(paths)
            t[kind] = time.perf_counter() - started
        if i:
            timings.append((t["A"], t["B"]))
    ratios = [b / a for a, b in timings]
    return {
        "baseline_s": statistics.median(a for a, _ in timings),
        "ours_s": statistics.median(b for _, b in timings),
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "pairs": len(timings),
        "identical": outputs_match(paths, out),
    }


def scale_run(root: Path) -> dict:
    """Run the pipeline for one size in a child process; its stage times and peak RSS."""
    for sub in ("lake",):
        subprocess.run(["rm", "-rf", str(root / sub)], check=True)
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(root)], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"pipeline child failed for {root}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def usage_rows(root: Path) -> int:
    import duckdb

    with duckdb.connect() as con:
        return con.execute(f"SELECT count(*) FROM read_parquet('{root}/landing/usage/*.parquet')").fetchall()[0][0]


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--scale-customers", default="5000,50000", help="customers per size (comma-separated)")
    parser.add_argument("--days", type=int, default=200)
    parser.add_argument("--workdir", default="/tmp/lakehouse-bench")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_pipeline(Path(args.child))))
        return

    work = Path(args.workdir)
    sizes = [int(c) for c in args.scale_customers.split(",")]
    print(f"# pipeline benchmarks ({machine()}, {date.today()})\n")
    scale = []
    for customers in sizes:
        root = work / f"c{customers}-d{args.days}"
        generate_once(root, customers, args.days)
        result = scale_run(root)
        result["usage_rows"] = usage_rows(root)
        scale.append((customers, result))
        print(f"scale {customers} customers: {result}", file=sys.stderr)

    small_root = work / f"c{sizes[0]}-d{args.days}"
    fb = feature_build_pairs(LakePaths(small_root), args.pairs)
    print("| benchmark | baseline | ours | ratio (median, min-max) | goal | note |")
    print("|---|---|---|---|---|---|")
    print(
        f"| feature build, {scale[0][1]['usage_rows']:,} usage rows | one DuckDB query from bronze "
        f"{fb['baseline_s']:.2f}s | silver+spine+views {fb['ours_s']:.2f}s | {fb['ratio_median']:.2f}x "
        f"({fb['ratio_min']:.2f}-{fb['ratio_max']:.2f}), {fb['pairs']} pairs | <= 1.5x | "
        f"outputs identical: {fb['identical']} |"
    )
    for customers, r in scale:
        total = sum(r[k] for k in ("ingestion", "validation", "features"))
        print(
            f"| ingest+validate+features, {r['usage_rows']:,} usage rows | - | {total:.1f}s (ingest "
            f"{r['ingestion']:.1f}, validate {r['validation']:.1f}, features {r['features']:.1f}) | - | "
            f"peak RSS < 4 GB | peak RSS {r['peak_rss_mb']:,.0f} MB |"
        )
    if len(scale) > 1:
        (_, r0), (_, r1) = scale[0], scale[-1]
        t0 = sum(r0[k] for k in ("ingestion", "validation", "features"))
        t1 = sum(r1[k] for k in ("ingestion", "validation", "features"))
        print(
            f"| scale {r0['usage_rows']:,} -> {r1['usage_rows']:,} usage rows | {t0:.1f}s | {t1:.1f}s | "
            f"{t1 / t0:.1f}x time for {r1['usage_rows'] / r0['usage_rows']:.1f}x rows | ~linear | |"
        )


if __name__ == "__main__":
    main()
