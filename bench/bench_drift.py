"""Drift computation at the churn demo's shape: drift_report vs a bare Evidently run on the same data.

    python bench/bench_drift.py [--rows 100000] [--pairs 5] [--quick]

Synthetic reference and current frames of --rows rows each with the churn domain's 21 features
(names and kinds from lakehouse/demos/churn/domain.py; the current frame has two shifted features).
Baseline: Evidently's `Report([ValueDrift(...) per column]).run` with the same methods and
thresholds on pandas frames built once outside the timing (and, for reference, DataDriftPreset,
which measures every column three times). Ours: `lakehouse.monitoring.drift.drift_report`
from polars frames (column checks, conversion, Evidently, reading results, weighting, HTML saved).
Also shown: the same distances computed directly with scipy (the floor), and the Evidently import.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from timing import alternating_pairs  # noqa: E402

from lakehouse.demos.churn.domain import AGE_BANDS, CHANNELS, CHURN, PLANS, REGIONS  # noqa: E402

CATEGORIES = {"plan": PLANS, "region": REGIONS, "age_band": AGE_BANDS, "channel": CHANNELS}


def frames(rows: int, seed: int):
    """Reference and current frames of the churn features; current has minutes_7d and plan shifted."""
    import numpy as np
    import polars as pl

    features = [f for view in CHURN.feature_views for f in view.features]

    def one(rng, shift: bool) -> pl.DataFrame:
        columns = {}
        for f in features:
            if f.dtype == "string":
                values = CATEGORIES[f.name]
                p = np.linspace(2, 1, len(values))
                if shift and f.name == "plan":
                    p = p[::-1]
                columns[f.name] = rng.choice(values, rows, p=p / p.sum())
            elif f.dtype == "int64":
                columns[f.name] = rng.poisson(3, rows)
            else:
                columns[f.name] = rng.gamma(2.0, 50.0, rows) * (1.3 if shift and f.name == "minutes_7d" else 1.0)
        return pl.DataFrame(columns)

    rng = np.random.default_rng(seed)
    return (
        one(rng, False),
        one(rng, True),
        [f.name for f in features],
        [f.name for f in features if f.dtype == "string"],
    )


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="20,000 rows and 2 pairs (a smoke run)")
    args = parser.parse_args()
    rows, pairs_n = (20_000, 2) if args.quick else (args.rows, args.pairs)

    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import evidently"], check=True)
    import_seconds = time.perf_counter() - started

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset
    from scipy import stats
    from scipy.spatial import distance

    from lakehouse.declarations import domain as defaults
    from lakehouse.monitoring import drift

    reference, current, features, categorical = frames(rows, seed=0)
    numeric = [f for f in features if f not in categorical]
    importance = {f: float(i + 1) for i, f in enumerate(reversed(features))}
    methods = {f: defaults.CATEGORICAL_METHOD if f in categorical else defaults.NUMERIC_METHOD for f in features}
    thresholds = {f: defaults.NUMERIC_THRESHOLD for f in features}
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    ref_pd = reference.with_columns([reference[f].cast(float) for f in numeric]).to_pandas()
    cur_pd = current.with_columns([current[f].cast(float) for f in numeric]).to_pandas()
    out = Path(tempfile.mkdtemp(prefix="bench_drift_"))

    def bare() -> None:
        report = Report(
            [ValueDrift(column=f, method=methods[f], threshold=thresholds[f]) for f in features], include_tests=True
        )
        report.run(
            current_data=Dataset.from_pandas(cur_pd, data_definition=definition),
            reference_data=Dataset.from_pandas(ref_pd, data_definition=definition),
        ).dict()

    def preset() -> None:
        report = Report(
            [DataDriftPreset(columns=features, per_column_method=methods, per_column_threshold=thresholds)],
            include_tests=True,
        )
        report.run(
            current_data=Dataset.from_pandas(cur_pd, data_definition=definition),
            reference_data=Dataset.from_pandas(ref_pd, data_definition=definition),
        ).dict()

    result = None

    def ours() -> None:
        nonlocal result
        result = drift.drift_report(reference, current, features, categorical, importance, report_dir=out)

    def scipy_only() -> None:
        for f in numeric:
            ref = ref_pd[f].to_numpy()
            stats.wasserstein_distance(ref, cur_pd[f].to_numpy()) / max(float(np.std(ref)), 0.001)
        for f in categorical:
            keys = sorted(set(ref_pd[f]) | set(cur_pd[f]))
            p = ref_pd[f].value_counts(normalize=True).reindex(keys, fill_value=0)
            q = cur_pd[f].value_counts(normalize=True).reindex(keys, fill_value=0)
            distance.jensenshannon(p, q)

    ours(), bare()  # warm-up
    pairs = alternating_pairs(bare, ours, pairs_n)
    ratios = [b / a for a, b in pairs]
    floor, presets = [], []
    for _ in range(pairs_n):
        started = time.perf_counter()
        scipy_only()
        floor.append(time.perf_counter() - started)
        started = time.perf_counter()
        preset()
        presets.append(time.perf_counter() - started)

    print(
        f"Drift of {rows:,} current vs {rows:,} reference rows, {len(features)} churn features "
        f"({len(numeric)} numeric, {len(categorical)} categorical), {pairs_n} pairs after a warm-up.\n"
    )
    print("| benchmark | baseline | ours | ratio (median, min-max) | goal |")
    print("|---|---|---|---|---|")
    print(
        f"| drift report | bare Evidently ValueDrift report {statistics.median(a for a, _ in pairs):.2f}s | "
        f"drift_report {statistics.median(b for _, b in pairs):.2f}s | {statistics.median(ratios):.2f}x "
        f"({min(ratios):.2f}-{max(ratios):.2f}) | <= 1.3x |"
    )
    print(
        f"| drift report | bare Evidently DataDriftPreset {statistics.median(presets):.2f}s (not used) | "
        f"drift_report {statistics.median(b for _, b in pairs):.2f}s | "
        f"{statistics.median(b for _, b in pairs) / statistics.median(presets):.2f}x | < 1x |"
    )
    print(f"| floor: the same distances in scipy | - | {statistics.median(floor):.2f}s | - | - |")
    print(f"| `import evidently` (fresh process) | - | {import_seconds:.1f}s | - | paid once per process |")
    print(
        f"| result | - | {result.status}: drifted {', '.join(result.drifted)}; weighted share "
        f"{result.weighted_drifted_share:.3f} | - | minutes_7d and plan drift |"
    )


if __name__ == "__main__":
    main()
