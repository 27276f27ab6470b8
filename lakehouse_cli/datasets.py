"""`lakehouse dataset add`, `lakehouse run`, `lakehouse serve` and `lakehouse status`: any dataset, no Python.

add infers datasets/<name>.yaml from the data and copies the files into data/landing/<name>/ (labels
into data/landing/<name>/labels/); run materializes the dataset's assets headless; serve starts its
BentoML service; status prints the champion, drift, live performance, the last retraining decision
and data counts.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from lakehouse.paths import LakePaths

SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _files(pattern: str) -> list[Path]:
    """The files a path or glob names (sorted), or SystemExit saying nothing matched."""
    matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)) if Path(p).is_file())
    if not matches:
        raise SystemExit(f"error: {pattern!r} matches no file")
    return matches


def _copy_into(files: list[Path], folder: Path) -> list[Path]:
    """Copy files into a landing folder under safe names, atomically (hidden name, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for f in files:
        target = folder / SAFE.sub("_", f.name)
        tmp = folder / f".{target.name}.tmp"
        shutil.copyfile(f, tmp)
        os.replace(tmp, target)
        copied.append(target)
    return copied


def cmd_add(args: argparse.Namespace) -> int:
    from lakehouse.declarations.datasets import DatasetSpecError, datasets_dir, save_spec
    from lakehouse.lake.dataset_inference import infer_spec

    files = _files(args.source)
    labels = _files(args.labels) if args.labels else None
    if bool(args.labels) != bool(args.labels_key):
        raise SystemExit("error: --labels and --labels-key go together")
    costs = None
    if args.costs:
        try:
            fp, fn = (float(x) for x in args.costs.split(","))
        except ValueError:
            raise SystemExit(f"error: --costs takes FP,FN (two numbers), got {args.costs!r}") from None
        costs = (fp, fn)
    target = datasets_dir() / f"{args.name}.yaml"
    if target.exists() and not args.force:
        raise SystemExit(f"error: {target} exists; edit it, or pass --force to infer it again")
    from lakehouse.domains import load_domains

    taken = {s.name: d.name for d in load_domains().values() if d.name != args.name for s in d.sources}
    for source in (args.name, f"{args.name}_labels"):
        if source in taken:
            raise SystemExit(
                f"error: the name {args.name!r} is taken ({taken[source]} has a source {source!r}); choose another name"
            )
    try:
        spec, lines = infer_spec(
            args.name,
            files,
            args.entity,
            args.timestamp,
            args.label,
            labels_files=labels,
            labels_key=args.labels_key,
            positive=args.positive,
            drop=tuple(args.drop),
            costs=costs,
            grain=args.grain,
        )
    except DatasetSpecError as e:
        raise SystemExit(f"error: {e}") from None
    path = save_spec(spec)
    paths = LakePaths.from_env()
    landed = _copy_into(files, paths.landing_folder(spec.name))
    if labels:
        landed += _copy_into(labels, paths.landing_folder(spec.name) / "labels")
    print(
        f"dataset {spec.name}: inferred from {len(files)} file(s)"
        + (f" and {len(labels)} label file(s)" if labels else "")
    )
    for line in lines:
        print(f"  {line}")
    print(f"\nwrote {path} (edit it to override anything above)")
    print(f"copied {len(landed)} file(s) into {paths.landing_folder(spec.name)}")
    print(f"next: .venv/bin/lakehouse run {spec.name}")
    return 0


def _champion_summary(paths: LakePaths, name: str) -> dict[str, Any] | None:
    from lakehouse.ml import model_registry

    tag = model_registry.champion(paths, name)
    if tag is None:
        return None
    meta = model_registry.model_metadata(paths, tag)
    test = (meta.get("metrics") or {}).get("test") or {}
    return {
        "model_version": tag,
        "trained_at": meta.get("trained_at"),
        "holdout": {k: test.get(k) for k in ("roc_auc", "pr_auc", "precision", "recall", "f1", "log_loss")},
        "baselines_roc_auc": {k: v.get("roc_auc") for k, v in (meta.get("baselines") or {}).items()},
        "threshold": (meta.get("threshold") or {}).get("threshold"),
    }


def cmd_run(args: argparse.Namespace) -> int:
    from assets.headless import outcome, run_domain
    from lakehouse.declarations.datasets import datasets_dir, load_spec
    from lakehouse.domains import BUILT_IN, get_domain
    from lakehouse.lake.dataset_inference import check_spec_against_data

    paths = LakePaths.from_env()
    try:
        domain = get_domain(args.name)
    except KeyError as e:
        raise SystemExit(f"error: {e.args[0]}") from None
    if args.name not in BUILT_IN:  # a dataset file: check it still matches its landing files
        spec = load_spec(datasets_dir() / f"{args.name}.yaml")
        landing = paths.landing_folder(spec.name)
        files = sorted(p for p in landing.glob("*") if p.is_file() and not p.name.startswith("."))
        label_files = sorted(p for p in (landing / "labels").glob("*") if p.is_file() and not p.name.startswith("."))
        problems = check_spec_against_data(spec, files, label_files or None) if files else [f"no files in {landing}"]
        if problems:
            print(f"{datasets_dir() / (args.name + '.yaml')} does not match the data:", file=sys.stderr)
            for p in problems:
                print(f"  - {p}", file=sys.stderr)
            return 2
    print(f"updating {domain.name}: land, validate, publish, score and monitor...", flush=True)
    run = run_domain(paths, domain.name, retrain=not args.no_retrain)
    found = outcome([run.update, *([run.retraining] if run.retraining else [])], [domain.name])
    steps, errors, findings = found.steps, found.errors, found.findings
    for check in findings:
        print(f"  finding: {check} failed (see `lakehouse status {domain.name}`)")
    for check in errors:
        print(f"  check failed: {check}", file=sys.stderr)
    for step in steps:
        print(f"  step failed: {step}", file=sys.stderr)
    decision = run.decision
    if decision.fire and run.retraining is not None:
        print(f"retraining: {decision.reason}; {'done' if run.retraining.success else 'FAILED'}")
    elif decision.fire:
        print(f"retraining due ({decision.reason}), not run: --no-retrain")
    else:
        print(f"no retraining: {decision.reason}")
    _print_status(paths, domain.name)
    if steps or errors:
        cause = f"step {steps[0]} failed" if steps else f"check {errors[0]} failed"
        print(f"\nerror: {cause} (of {len(steps)} failed steps, {len(errors)} failed checks above)", file=sys.stderr)
        return 1
    if findings and args.fail_on_checks:
        print(f"\nerror: monitoring found {', '.join(findings)} (--fail-on-checks)", file=sys.stderr)
        return 3
    print(f"\nserve it: .venv/bin/lakehouse serve {domain.name}")
    return 0


def status(paths: LakePaths, name: str) -> dict[str, Any]:
    """Everything `lakehouse status` shows, as plain data."""
    from lakehouse.domains import get_domain
    from lakehouse.monitoring.results import latest_result
    from lakehouse.monitoring.retraining import last_decision
    from lakehouse_cli.summary import lake_summary

    domain = get_domain(name)
    summary = lake_summary(paths, domain)
    return {
        "dataset": name,
        "champion": _champion_summary(paths, name),
        "drift": latest_result(paths, domain, "drift"),
        "live_performance": latest_result(paths, domain, "performance"),
        "last_retraining_decision": last_decision(paths, domain),
        # How long after its event a label is final: what live performance waits for.
        "label_horizon_days": domain.label_horizon.days,
        "data": {
            "sources": summary["sources"],
            "features": summary["features"],
            "label_events": summary["label_events"],
            "training_rows": summary["training_rows"],
        },
    }


def _print_status(paths: LakePaths, name: str) -> None:
    s = status(paths, name)
    champion = s["champion"]
    print(f"\ndataset {name}")
    if champion:
        h = champion["holdout"]
        base = ", ".join(f"{k} {v:.3f}" for k, v in champion["baselines_roc_auc"].items() if v is not None)
        print(
            f"  champion {champion['model_version']}: hold-out ROC AUC {h['roc_auc']:.3f}, PR AUC {h['pr_auc']:.3f}, "
            f"precision {h['precision'] or 0:.3f}, recall {h['recall'] or 0:.3f} (baselines: {base})"
        )
    else:
        print("  champion: none yet")
    drift = s["drift"]
    if drift:
        top = sorted(drift["features"].items(), key=lambda kv: -kv[1]["score"])[:3]
        print(f"  drift ({drift['at']}): {drift['status']} - {drift['reason']}")
        if top:
            print(
                "    largest: "
                + ", ".join(f"{f} {v['score']:.3f}{' (drifted)' if v['drifted'] else ''}" for f, v in top)
            )
    else:
        print("  drift: not measured yet")
    perf = s["live_performance"]
    print(f"  live performance: {perf['check']['reason'] if perf else 'not measured yet'}")
    horizon = s["label_horizon_days"]
    print(
        f"  labels: final {horizon} days after their event (live performance waits that long)"
        if horizon
        else "  labels: final when they land (no label delay declared or measured)"
    )
    decision = s["last_retraining_decision"]
    print(
        f"  last retraining decision: {('fired: ' if decision['fire'] else 'skipped: ') + decision['reason'] if decision else 'none yet'}"
    )
    for source, counts in s["data"]["sources"].items():
        print(
            f"  {source}: {counts['batches']} batches, {counts['bronze_rows']:,} rows in, {counts['valid_rows']:,} valid, "
            f"{counts['quarantined_rows']:,} quarantined, {counts['silver_rows'] or 0:,} in silver"
        )
    print(f"  label events {s['data']['label_events'] or 0:,}, training rows {s['data']['training_rows'] or 0:,}")


def cmd_status(args: argparse.Namespace) -> int:
    paths = LakePaths.from_env()
    try:
        if args.json:
            print(json.dumps(status(paths, args.name), indent=2, default=str))
        else:
            _print_status(paths, args.name)
    except KeyError as e:
        raise SystemExit(f"error: {e.args[0]}") from None
    return 0


def serve_command(name: str, host: str, port: int) -> list[str]:
    """The `bentoml serve` command line of a dataset's service (with its declaration's --args)."""
    from lakehouse.domains import get_domain
    from lakehouse.serving.packaging import service_arguments

    bentoml = str(Path(sys.executable).parent / "bentoml")
    domain = get_domain(name)
    return [bentoml, "serve", domain.service, *service_arguments(domain), "--host", host, "--port", str(port)]


def cmd_serve(args: argparse.Namespace) -> int:
    from lakehouse.domains import get_domain
    from lakehouse.ml import model_registry
    from lakehouse.paths import REPO_ROOT

    paths = LakePaths.from_env()
    try:
        get_domain(args.name)
    except KeyError as e:
        raise SystemExit(f"error: {e.args[0]}") from None
    if model_registry.champion(paths, args.name) is None:
        raise SystemExit(f"error: {args.name} has no champion model yet: run `lakehouse run {args.name}` first")
    os.environ["BENTOML_HOME"] = str(model_registry.bentoml_home(paths))
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    command = serve_command(args.name, args.host, args.port)
    print(" ".join(command), flush=True)
    os.chdir(REPO_ROOT)
    os.execv(command[0], command)


def add_dataset_commands(sub: argparse._SubParsersAction) -> None:
    """Add `dataset add`, `run`, `serve` and `status` to the CLI's subparsers."""
    p = sub.add_parser("dataset", help="bring your own dataset: `dataset add NAME --source ...`")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    a = dsub.add_parser("add", help="infer datasets/NAME.yaml from CSV/Parquet files and land the files")
    a.add_argument("name", help="lowercase letters, digits and _ (it names assets, folders and the service)")
    a.add_argument("--source", required=True, help="a CSV/Parquet file or a glob of them (quote the glob)")
    a.add_argument("--entity", required=True, help="the entity id column")
    a.add_argument("--timestamp", required=True, help="the event time column")
    a.add_argument("--label", required=True, help="the binary label column")
    a.add_argument("--labels", help="labels in separate file(s) (path or glob), joined by --labels-key")
    a.add_argument("--labels-key", help="the column joining events to labels")
    a.add_argument("--positive", help="the label value of the positive class (default: 1/true/yes, else the minority)")
    a.add_argument(
        "--drop", nargs="*", default=[], metavar="COL", help="columns never to use (ids, leaks, vendor scores)"
    )
    a.add_argument("--costs", help="FP,FN: the cost of a false positive and of a false negative (default 1,5)")
    a.add_argument(
        "--grain",
        choices=("event", "snapshot"),
        help="event: each row is one case, scored once; snapshot: rows are an entity's periodic states "
        "(default: inferred from how many days each entity has rows on)",
    )
    a.add_argument("--force", action="store_true", help="overwrite an existing datasets/NAME.yaml")
    a.set_defaults(func=cmd_add)

    p = sub.add_parser(
        "run",
        help="update a dataset headless (land, validate, publish, score, monitor), then retrain if the "
        "retraining policy says so; print its status",
    )
    p.add_argument("name")
    p.add_argument(
        "--no-retrain", action="store_true", help="take and record the retraining decision, do not act on it"
    )
    fail_on_checks_option(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("serve", help="bentoml serve a dataset's champion (same endpoints as the demo)")
    p.add_argument("name")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3002)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("status", help="champion, drift, live performance, last retraining decision, data counts")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)


def fail_on_checks_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fail-on-checks",
        action="store_true",
        help="exit 3 when a monitoring check fails (drift, performance, skew); without it a finding is reported, "
        "and only a failed step or data check exits non-zero (1)",
    )
