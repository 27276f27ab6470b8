"""Drift alarms on the demo world: false alarms on stable days, detection delay on drifted ones.

    python bench/bench_drift_alarms.py [--stable-days 30] [--drift-days 7] [--long-days 480] [--quick]

Setup: the demo's data root (data/, `make demo`: 120 simulated days and its champion) is copied into a
temp dir per world, which becomes LAKEHOUSE_DATA_ROOT and DAGSTER_HOME. Each world continues the
simulation with `lakehouse simulate` (no drift; or a drift from the first new day) and is published
once with `lakehouse run churn --no-retrain`, so the champion stays the demo's. Then the drift check
is replayed for the window ending on each new day (`domain_drift(..., until=day)`), twice on the same
frames: with fixed thresholds (the baseline: Evidently's defaults, 0.1 per feature, share limit 30%)
and calibrated from the reference's time chunks (lakehouse/monitoring/drift_calibration.py).
--long-days also generates a long history from scratch (`lakehouse demo --days N`) and checks its
newest window once. Reported: failures per world, the first failing day, and the features flagged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lakehouse.demos.churn.simulator import last_landing_day, read_generator_record  # noqa: E402

WORLDS = {
    "stable": [],
    "price rise (demo drift: basic plan +50%)": ["--drift", "price_rise:{day}:basic::0.5"],
    **{
        f"usage drop (-{m:.0%}, every region)": [
            arg for r in ("north", "south", "east", "west") for arg in ("--drift", f"usage_drop:{{day}}::{r}:{m}")
        ]
        for m in (0.3, 0.6)
    },
}


def lakehouse(env: dict[str, str], *args: str, check: bool = True) -> None:
    """Run the `lakehouse` command on a world's data root; its output goes to stderr (progress)."""
    subprocess.run([str(ROOT / ".venv/bin/lakehouse"), *args], env=env, check=check, stdout=sys.stderr)


def world_env(root: Path) -> dict[str, str]:
    return {**os.environ, "LAKEHOUSE_DATA_ROOT": str(root / "data"), "DAGSTER_HOME": str(root / "dagster")}


def replay(root: Path, since) -> list[dict]:
    """The drift check for the window ending on each day from `since` on, fixed and calibrated."""
    import polars as pl

    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.ml import model_registry
    from lakehouse.monitoring.drift import domain_drift
    from lakehouse.paths import LakePaths

    paths = LakePaths(root / "data")
    champion = model_registry.champion(paths, "churn")
    days = (
        pl.read_parquet(paths.features(CHURN.feature_views[0].name), columns=["event_timestamp"])["event_timestamp"]
        .unique()
        .sort()
    )
    out = []
    for day in days.filter(days >= since).to_list():
        row = {"day": day}
        for name, config in (
            ("fixed", replace(CHURN.drift, calibrate=False)),
            ("calibrated", replace(CHURN.drift, calibrate=True)),
        ):
            started = time.perf_counter()
            result = domain_drift(paths, CHURN, champion, until=day, config=config)
            row[name] = {
                "passed": result.passed,
                "share": result.weighted_drifted_share,
                "limit": result.max_weighted_drift_share,
                "drifted": result.drifted,
                "seconds": time.perf_counter() - started,
            }
        print(
            f"  {day:%Y-%m-%d}: fixed {row['fixed']['share']:.1%} {'FAIL' if not row['fixed']['passed'] else 'ok'}, "
            f"calibrated {row['calibrated']['share']:.1%} {'FAIL' if not row['calibrated']['passed'] else 'ok'} "
            f"{row['calibrated']['drifted']}",
            file=sys.stderr,
            flush=True,
        )
        out.append(row)
    return out


def newest_day(root: Path):
    import polars as pl

    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.paths import LakePaths

    table = LakePaths(root / "data").features(CHURN.feature_views[0].name)
    return pl.read_parquet(table, columns=["event_timestamp"])["event_timestamp"].max()


def summary(name: str, rows: list[dict], mode: str) -> str:
    failed = [r for r in rows if r[mode]["passed"] is False]
    first = next((i + 1 for i, r in enumerate(rows) if r[mode]["passed"] is False), None)
    flagged = sorted({f for r in rows for f in r[mode]["drifted"]})
    shares = [r[mode]["share"] or 0.0 for r in rows]
    return (
        f"| {name} | {mode} | {len(failed)} / {len(rows)} | {first or '-'} | "
        f"{min(shares):.1%}-{max(shares):.1%} (limit {rows[-1][mode]['limit']:.1%}) | "
        f"{', '.join(flagged) or '-'} | {sorted(r[mode]['seconds'] for r in rows)[len(rows) // 2]:.1f}s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, default=ROOT / "data", help="a `make demo` data root to continue")
    parser.add_argument("--stable-days", type=int, default=30)
    parser.add_argument("--drift-days", type=int, default=7)
    parser.add_argument("--long-days", type=int, default=480, help="0 to skip the long history")
    parser.add_argument("--quick", action="store_true", help="7 stable days, 3 drifted, no long history")
    args = parser.parse_args()
    if args.quick:
        args.stable_days, args.drift_days, args.long_days = 7, 3, 0
    if not (args.base / "registry").exists():
        sys.exit(f"no demo data root at {args.base}: run `make demo` first")

    lines = [
        "### Drift alarms on the demo world (champion of the 120-day demo, no retraining)",
        "",
        "| world | thresholds | failed days | first failing day | weighted drifted share | features flagged | "
        "check time (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        for i, (name, drift) in enumerate(WORLDS.items()):
            root = Path(tmp) / f"world{i}"
            shutil.copytree(args.base, root / "data")
            env = world_env(root)
            first_new_day = newest_day(root) + timedelta(days=1)
            n = args.stable_days if not drift else args.drift_days
            print(f"{name}: simulating {n} days", file=sys.stderr, flush=True)
            day = 1 + last_landing_day(
                root / "data" / "landing", read_generator_record(root / "data" / "landing").start
            )
            lakehouse(env, "simulate", "--days", str(n), "--no-wait", *(a.format(day=day) for a in drift))
            lakehouse(env, "run", "churn", "--no-retrain")
            rows = replay(root, first_new_day)
            lines += [summary(name, rows, mode) for mode in ("fixed", "calibrated")]
        if args.long_days:
            root = Path(tmp) / "long"
            env = world_env(root)
            print(f"long history: {args.long_days} days", file=sys.stderr, flush=True)
            # The demo exits 1 when its drift check fails (the fixed thresholds' verdict); the replay says.
            lakehouse(env, "demo", "--days", str(args.long_days), check=False)
            day = newest_day(root)
            # The newest window only: replay() starts from the given day.
            rows = replay(root, day)
            lines += [summary(f"long history ({args.long_days} days)", rows, m) for m in ("fixed", "calibrated")]
    lines += [
        "",
        "Failed days: days whose 7-day window failed the check. First failing day: days after the first "
        "new day (the first drifted day in a drifted world). Fixed: 0.1 per feature and a 30% share limit.",
        "",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
