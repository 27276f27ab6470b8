"""The `lakehouse` command line: generate demo data, run the pipeline headless, summarize, start the UI."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date

from lakehouse.models_cli import add_models_commands
from lakehouse.paths import DATA_ROOT_ENV, LakePaths

NEXT_STEPS = """
Next:
  make dev                      Dagster UI on http://127.0.0.1:3000 (asset graph, metadata, checks, sensors)
  .venv/bin/feast -c feature_repo feature-views list
  .venv/bin/lakehouse models list    models, metrics and the champion (model cards: data/models/churn/)
  .venv/bin/lakehouse summary        this table again
Data lives under {root} (set {env} to move it).
"""


def _generate(paths: LakePaths, args: argparse.Namespace) -> None:
    from lakehouse.domains.churn_generator import Drift, GeneratorConfig, generate

    drifts = tuple(Drift(kind=k, start_day=d, plan=p or None, region=r or None)
                   for k, d, p, r in (spec.split(":") for spec in args.drift))
    config = GeneratorConfig(customers=args.customers, days=args.days, start=date.fromisoformat(args.start),
                             seed=args.seed, drifts=drifts, bad_row_rate=args.bad_row_rate,
                             bad_file_rate=args.bad_file_rate)
    started = time.perf_counter()
    rows = generate(paths.landing, config, progress=lambda msg: print(f"  {msg}", flush=True))
    print(f"generated {sum(rows.values()):,} rows into {paths.landing} in {time.perf_counter() - started:.1f}s: "
          + ", ".join(f"{k} {v:,}" for k, v in rows.items()))


def cmd_generate(args: argparse.Namespace) -> int:
    _generate(LakePaths.from_env(), args)
    return 0


def _materialize(paths: LakePaths) -> bool:
    """Materialize everything; True unless a step failed or an ERROR check failed."""
    from assets.headless import failed_checks, failed_steps, materialize_all

    started = time.perf_counter()
    print("materializing every asset (what 'Materialize all' does in the UI)...", flush=True)
    result = materialize_all(paths)
    steps, checks = failed_steps(result), failed_checks(result)
    for check, severity in checks:
        print(f"  check failed ({severity}): {check}", file=sys.stderr)
    for step in steps:
        print(f"  step failed: {step}", file=sys.stderr)
    ok = not steps and all(severity != "ERROR" for _, severity in checks)
    print(f"{'done' if ok else 'FAILED'} in {time.perf_counter() - started:.1f}s", flush=True)
    return ok


def _print_summary(paths: LakePaths) -> None:
    from lakehouse.domains.churn import CHURN
    from lakehouse.summary import format_summary, lake_summary

    print(format_summary(lake_summary(paths, CHURN)))
    from lakehouse.registry import champion, list_models

    models = list_models(paths, CHURN.name)
    current = champion(paths, CHURN.name)
    if models:
        newest = models[0]
        print(f"models: {len(models)}; newest {newest['tag']} ({newest['status']}, test ROC AUC "
              f"{newest['test_roc_auc'] or 0:.3f}); champion: {current or 'none'}")


def cmd_demo(args: argparse.Namespace) -> int:
    paths = LakePaths.from_env()
    existing = list(paths.landing.glob("*/*")) if paths.landing.exists() else []
    if existing:
        print(f"landing already holds {len(existing)} files: not generating (delete {paths.landing} to start over)")
    else:
        _generate(paths, args)
    ok = _materialize(paths)
    _print_summary(paths)
    print(NEXT_STEPS.format(root=paths.root, env=DATA_ROOT_ENV))
    return 0 if ok else 1


def cmd_materialize(args: argparse.Namespace) -> int:
    paths = LakePaths.from_env()
    ok = _materialize(paths)
    _print_summary(paths)
    return 0 if ok else 1


def cmd_summary(args: argparse.Namespace) -> int:
    _print_summary(LakePaths.from_env())
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from lakehouse.dagster_home import ensure_dagster_home
    from lakehouse.paths import REPO_ROOT

    home = ensure_dagster_home(LakePaths.from_env())
    os.environ["DAGSTER_HOME"] = str(home)
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
        p.add_argument("--drift", action="append", default=[], metavar="KIND:DAY:PLAN:REGION",
                       help="e.g. price_rise:60:basic: or usage_drop:60::south (repeatable)")

    p = sub.add_parser("generate", help="write demo landing files (deterministic by seed)")
    generator_options(p)
    p.set_defaults(func=cmd_generate)
    p = sub.add_parser("demo", help="generate demo data if landing is empty, materialize everything, summarize")
    generator_options(p)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("materialize", help="materialize every asset headless and summarize")
    p.set_defaults(func=cmd_materialize)
    p = sub.add_parser("summary", help="rows per layer, quarantine and online-store coverage")
    p.set_defaults(func=cmd_summary)
    add_models_commands(sub)
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
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
