"""The `lakehouse` command line: demo data, the pipeline headless, models, datasets (add, run, serve, status), the UI."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from datetime import date, timedelta

from lakehouse.paths import DATA_ROOT_ENV, LakePaths
from lakehouse_cli.datasets import add_dataset_commands, fail_on_checks_option
from lakehouse_cli.models import add_models_commands

NEXT_STEPS = """
Next:
  make dev                      Dagster UI on http://127.0.0.1:3000 (asset graph, metadata, checks, sensors)
  .venv/bin/feast -c feature_repo feature-views list
  .venv/bin/lakehouse models list    models, metrics and the champion (model cards: data/models/churn/)
  .venv/bin/lakehouse summary        this table again
  make serve                         the champion over HTTP on http://127.0.0.1:3001 (see the README, Serving)
  .venv/bin/lakehouse simulate --drift-from 122   feed new days (with drift) to a running `make dev`
  .venv/bin/lakehouse dataset add NAME --source 'your/*.csv' --entity ID --timestamp TIME --label Y
                                     bring your own data (then `lakehouse run NAME`)
Data lives under {root} (set {env} to move it).
"""


def _generate(paths: LakePaths, args: argparse.Namespace) -> None:
    from lakehouse.demos.churn.generator import GeneratorConfig, generate, parse_drift
    from lakehouse.demos.churn.simulator import write_generator_record

    drifts = tuple(parse_drift(spec) for spec in args.drift)
    config = GeneratorConfig(
        customers=args.customers,
        days=args.days,
        start=date.fromisoformat(args.start),
        seed=args.seed,
        drifts=drifts,
        bad_row_rate=args.bad_row_rate,
        bad_file_rate=args.bad_file_rate,
    )
    write_generator_record(paths.landing, config)  # `lakehouse simulate` continues this same simulation
    started = time.perf_counter()
    rows = generate(paths.landing, config, progress=lambda msg: print(f"  {msg}", flush=True))
    print(
        f"generated {sum(rows.values()):,} rows into {paths.landing} in {time.perf_counter() - started:.1f}s: "
        + ", ".join(f"{k} {v:,}" for k, v in rows.items())
    )


def cmd_generate(args: argparse.Namespace) -> int:
    _generate(LakePaths.from_env(), args)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from lakehouse.demos.churn.generator import parse_drift
    from lakehouse.demos.churn.simulator import (
        DEMO_DRIFT,
        SimulationConflict,
        plan_continuation,
        run_continuation,
        stop_on_interrupt,
    )

    landing = LakePaths.from_env().landing
    try:
        drifts = tuple(parse_drift(spec) for spec in args.drift)
        if args.drift_from is not None:
            drifts += (replace(DEMO_DRIFT, start_day=args.drift_from),)
        plan = plan_continuation(
            landing,
            args.days,
            customers=args.customers,
            seed=args.seed,
            start=date.fromisoformat(args.start) if args.start else None,
            drifts=drifts,
            label_delay_days=args.label_delay_days,
        )
    except ValueError as e:  # SimulationConflict included
        print(f"lakehouse simulate: {e}", file=sys.stderr)
        return 2
    config, pace = plan.config, 0.0 if args.no_wait else args.days_per_minute
    for note in plan.notes:
        print(f"  {note}")
    print(
        f"simulating days {config.first_day}..{plan.last_new_day} ({config.start + timedelta(config.first_day)}.."
        f"{config.start + timedelta(plan.last_new_day)}) into {landing}, "
        + (f"{pace:g} days per minute" if pace > 0 else "as fast as possible")
        + "; Ctrl-C stops after a day",
        flush=True,
    )
    started = time.perf_counter()
    with stop_on_interrupt() as stop:
        try:
            result = run_continuation(
                landing, plan, days_per_minute=pace, stop=stop, progress=lambda msg: print(f"  {msg}", flush=True)
            )
        except SimulationConflict as e:
            print(f"lakehouse simulate: {e}", file=sys.stderr)
            return 2
    rows = result.rows
    end = config.first_day + result.days_written - 1
    print(
        ("stopped: " if result.stopped else "")
        + f"wrote {result.days_written} day{'' if result.days_written == 1 else 's'} "
        + (f"({config.first_day}..{end}) " if result.days_written else "")
        + f"in {time.perf_counter() - started:.1f}s, {sum(rows.values()):,} rows: "
        + ", ".join(f"{k} {v:,}" for k, v in rows.items())
        + f"; the next `lakehouse simulate` continues from day {end + 1}",
        flush=True,
    )
    return 0


def _materialize(paths: LakePaths, fail_on_checks: bool) -> int:
    """Materialize everything and say what was found; the exit code (0, 1: a step or data check, 3: a finding)."""
    from assets.headless import materialize_all, outcome
    from lakehouse.domains import load_domains

    started = time.perf_counter()
    print("materializing every asset (what 'Materialize all' does in the UI)...", flush=True)
    found = outcome([materialize_all(paths)], list(load_domains()))
    for check in found.findings:
        name = check.split("/", 1)[0]
        print(
            f"  finding: {check} failed; see `lakehouse status {name}`, and `lakehouse run {name}` "
            "(or the retraining sensor under `make dev`) decides whether to retrain"
        )
    for check in found.errors:
        print(f"  check failed: {check}", file=sys.stderr)
    for step in found.steps:
        print(f"  step failed: {step}", file=sys.stderr)
    broken = found.steps or found.errors
    print(f"{'FAILED' if broken else 'done'} in {time.perf_counter() - started:.1f}s", flush=True)
    if broken:
        return 1
    return 3 if found.findings and fail_on_checks else 0


def _print_summary(paths: LakePaths) -> None:
    """Every domain's lake counts, models and champion."""
    from lakehouse.domains import load_domains
    from lakehouse.ml.model_registry import champion, list_models
    from lakehouse_cli.summary import format_summary, lake_summary

    for domain in load_domains().values():
        print(format_summary(lake_summary(paths, domain)))
        models = list_models(paths, domain.name)
        current = champion(paths, domain.name)
        if models:
            newest = models[0]
            print(
                f"models: {len(models)}; newest {newest['tag']} ({newest['status']}, test ROC AUC "
                f"{newest['test_roc_auc'] or 0:.3f}); champion: {current or 'none'}"
            )


def cmd_demo(args: argparse.Namespace) -> int:
    paths = LakePaths.from_env()
    existing = list(paths.landing.glob("*/*")) if paths.landing.exists() else []
    if existing:
        print(f"landing already holds {len(existing)} files: not generating (delete {paths.landing} to start over)")
    else:
        _generate(paths, args)
    code = _materialize(paths, args.fail_on_checks)
    _print_summary(paths)
    print(NEXT_STEPS.format(root=paths.root, env=DATA_ROOT_ENV))
    return code


def cmd_materialize(args: argparse.Namespace) -> int:
    paths = LakePaths.from_env()
    code = _materialize(paths, args.fail_on_checks)
    _print_summary(paths)
    return code


def cmd_summary(args: argparse.Namespace) -> int:
    _print_summary(LakePaths.from_env())
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from assets.dagster_home import ensure_dagster_home
    from assets.headless import report_orphaned_runs
    from lakehouse.paths import REPO_ROOT

    home = ensure_dagster_home(LakePaths.from_env())
    os.environ["DAGSTER_HOME"] = str(home)
    with DagsterInstance.from_config(str(home)) as instance:
        report_orphaned_runs(instance)
    os.chdir(REPO_ROOT)
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    # Bound to 127.0.0.1: Dagster's webserver has no authentication.
    os.execv(dagster, [dagster, "dev", "-w", "workspace.yaml", "-h", args.host, "-p", str(args.port)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def generator_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--customers", type=int, default=6000, help="customers at the start (default 6000)")
        p.add_argument("--days", type=int, default=120, help="simulated days (default 120)")
        p.add_argument("--start", default="2025-01-01", help="first simulated day (default 2025-01-01)")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--bad-row-rate", type=float, default=0.002, help="share of malformed rows per file")
        p.add_argument("--bad-file-rate", type=float, default=0.01, help="chance a file is malformed")
        p.add_argument(
            "--drift",
            action="append",
            default=[],
            metavar="KIND:DAY:PLAN:REGION",
            help="e.g. price_rise:60:basic: or usage_drop:60::south (repeatable)",
        )

    p = sub.add_parser("generate", help="write demo landing files (deterministic by seed)")
    generator_options(p)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("demo", help="generate demo data if landing is empty, materialize everything, summarize")
    generator_options(p)
    fail_on_checks_option(p)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("simulate", help="continue the demo's simulation: write its next days into landing, at a pace")
    p.add_argument("--days", type=int, default=30, help="days to add after the last day in landing (default 30)")
    # At the demo's size `make dev` needs about 40 s per simulated day on 2 cores (five landing runs two
    # at a time, a publish run, and a retraining run every third day): a faster pace only queues runs.
    p.add_argument(
        "--days-per-minute",
        type=float,
        default=1.0,
        help="pace: simulated days written per minute (default 1, what `make dev` keeps up with at the "
        "demo's size on 2 cores; 0: as fast as possible)",
    )
    p.add_argument("--no-wait", action="store_true", help="as fast as possible (same as --days-per-minute 0)")
    p.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="KIND:DAY:PLAN:REGION[:MAGNITUDE]",
        help="a drift from simulated day DAY (0-based, after the days in landing), e.g. "
        "price_rise:130:basic: or usage_drop:130::south:0.4 (repeatable)",
    )
    p.add_argument(
        "--drift-from",
        type=int,
        metavar="DAY",
        help="the demo's drift from simulated day DAY: the basic plan's price rises by 50%% "
        "(its customers churn more; the current champion never saw it)",
    )
    p.add_argument(
        "--label-delay-days",
        type=int,
        metavar="K",
        help="cancellations (the label) of day d land in the file of day d+K, from the next day on",
    )
    p.add_argument("--customers", type=int, help="only without a recorded config (must match it otherwise)")
    p.add_argument("--seed", type=int, help="only without a recorded config (must match it otherwise)")
    p.add_argument("--start", help="only without a recorded config (must match it otherwise)")
    p.set_defaults(func=cmd_simulate)
    p = sub.add_parser("materialize", help="materialize every asset headless and summarize")
    fail_on_checks_option(p)
    p.set_defaults(func=cmd_materialize)
    p = sub.add_parser("summary", help="rows per layer, quarantine and online-store coverage")
    p.set_defaults(func=cmd_summary)
    add_models_commands(sub)
    add_dataset_commands(sub)
    p = sub.add_parser("dev", help="start the Dagster UI and daemon (dagster dev) with sensors on")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    p.set_defaults(func=cmd_dev)
    return parser


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Library deprecation chatter (Feast, Dagster) is for their maintainers, not for our users.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="dagster")
    args = build_parser().parse_args(argv)
    from lakehouse.declarations.datasets import DatasetSpecError

    try:
        return args.func(args)
    except DatasetSpecError as e:  # a broken datasets/*.yaml: say which and why, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
