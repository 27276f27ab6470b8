"""Continuous-training latency: a drifted batch lands -> the new champion answers, at the demo size.

    python bench/bench_loop.py [--quick] [--drift-days 7] [--magnitude 0.6] [--launch-samples 5] [--keep]

Setup (not timed): the demo data root (data/, `make demo`) is copied to a temp dir, which becomes
LAKEHOUSE_DATA_ROOT and DAGSTER_HOME. Its champion is replaced by a quick untuned model (as
tests/assets/test_continuous_training.py does): the drifted days have no matured labels yet (30-day horizon),
so a retrain of the tuned demo champion cannot be proven better and the gate rightly refuses, leaving
nothing to time. The world continues with --drift-days days in which usage drops in every region
(lakehouse.demos.churn.simulator); all but the last are ingested and published (a publish run, which also checks
drift once), and a real `bentoml serve` is started.

Timed (t0 -> t1): the last day's files appear in landing (renamed in, as a producer does) -> landing
sensor tick -> one run per new file, as many at a time as the instance's max_concurrent_runs (2: runs
of different sources are in different pools, assets/pools.py) ->
publish sensor tick -> publish run (features, online store, batch scores; the drift check must fail) ->
retraining sensor tick ->
retrain run (the gate must promote) -> a poller that POSTs /model_info every 0.2 s sees the new
champion (t1). Sensor ticks are evaluated in this process, right after the previous stage, so the
sensor intervals are not in t1 - t0; they are reported separately. Every run executes in a fresh
Python process (imports the code location, then execute_in_process against the same instance), as
the daemon's run launcher does, so t1 - t0 includes per-run start-up; that start-up is also shown.

The drift computation at 100k rows x the demo's 21 features is bench/bench_drift.py
(`python bench/bench_drift.py --rows 100000`); here the drift step runs at the demo size.
LightGBM uses 1 thread (LgbParams.num_threads); polars/DuckDB use their defaults (all cores).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "tests"))  # bento_process: the tests' `bentoml serve` helper

GOAL_SECONDS = 60.0
REGIONS = ("north", "south", "east", "west")


def say(message: str) -> None:
    """Progress to stderr (stdout is the table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- one run, one process


def child_main(spec: dict) -> None:
    """In a fresh process: import the code location, run one job against DAGSTER_HOME's instance."""
    started = time.time()
    import dagster as dg

    from assets.definitions import defs

    imported = time.time()
    result = defs.resolve_job_def(spec["job"]).execute_in_process(
        run_config=spec["run_config"], instance=dg.DagsterInstance.get(), tags=spec["tags"], raise_on_error=False
    )
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "success": result.success,
                "started": started,
                "imported": imported,
                "finished": time.time(),
            }
        ),
        flush=True,
    )


@dataclass
class Run:
    """One launched run: wall-clock marks (time.time()) and its step durations from the instance."""

    job: str
    run_id: str
    success: bool
    spawned: float
    imported: float  # code location imported in the child
    finished: float  # the child's result read: the run's status is final in the instance
    exit_seconds: float | None = None  # the child's interpreter shutdown after that (not waited for)
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def launch(self) -> float:
        return self.imported - self.spawned

    @property
    def wall(self) -> float:
        return self.finished - self.spawned


_exiting: list[threading.Thread] = []  # children still shutting down after their run ended


def wait_for_exits() -> None:
    """Until every launched child process has exited (their exit times are then known)."""
    for thread in _exiting:
        thread.join(timeout=60)


def execute(job: str, run_config: dict, tags: dict, log: Path) -> Run:
    """Launch one run in a fresh Python process (as the daemon's run launcher does) and wait for its end.

    The run has ended when the child prints its result: its status is then final in the instance, which
    is all the daemon's sensors and run queue read. The child's interpreter shutdown (1.5-2 s with these
    libraries loaded) goes on in the background, on the same cores, as under the daemon.
    """
    spec = json.dumps({"job": job, "run_config": run_config, "tags": tags})
    spawned = time.time()
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--execute-run", spec], cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True
        )
    info = None
    for line in proc.stdout:
        if line.startswith('{"run_id"'):
            info = json.loads(line)
            break
    finished = time.time()
    if info is None:
        sys.exit(f"run of {job} crashed (exit {proc.wait()}); see {log}")
    run = Run(job, info["run_id"], info["success"], spawned, info["imported"], finished)

    def reap() -> None:
        proc.stdout.read()
        if proc.wait():
            say(f"warning: the process of run {run.run_id} ({job}) exited with {proc.returncode}; see {log}")
        run.exit_seconds = time.time() - finished

    _exiting.append(threading.Thread(target=reap, daemon=True))
    _exiting[-1].start()
    return run


def execute_side_by_side(requests: list, slots: int, log: Path) -> list[Run]:
    """The landing burst as the daemon's queue runs it: `slots` runs at a time, in request order.

    Exact for one day's files (one per source): their pools (assets/pools.py) are all different.
    """
    from concurrent.futures import ThreadPoolExecutor

    sources = [r.tags["lakehouse/source"] for r in requests]
    if len(set(sources)) != len(sources):
        sys.exit(f"the timed burst has two files of one source ({sources}); they would share a pool")

    def one(request) -> Run:
        run = execute(request.job_name, request.run_config, request.tags, log)
        say(f"timed: {request.job_name} ({request.tags['lakehouse/file']}) {run.wall:.1f}s, success {run.success}")
        return run

    with ThreadPoolExecutor(max_workers=slots) as pool:
        return list(pool.map(one, requests))


def step_durations(instance, run_id: str) -> dict[str, float]:
    """Seconds per step of a run, from the instance's step stats (in execution order)."""
    stats = sorted(instance.get_run_step_stats(run_id), key=lambda s: s.start_time or 0)
    return {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in stats}


def latest_metadata(instance, key) -> dict:
    """The newest materialization's metadata of an asset, as plain values."""
    records = instance.fetch_materializations(key, limit=1).records
    if not records:
        return {}
    return {k: getattr(v, "value", v) for k, v in records[0].asset_materialization.metadata.items()}


def tick(defs, instance, paths, sensor: str, cursor: str | None = None):
    """Evaluate one sensor tick as the daemon would; (result, seconds, minimum interval)."""
    import dagster as dg

    from assets.resources import LakehouseResource

    definition = defs.resolve_sensor_def(sensor)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"lakehouse": LakehouseResource(data_root=str(paths.root))}
    )
    started = time.perf_counter()
    result = definition.evaluate_tick(context)
    return result, time.perf_counter() - started, definition.minimum_interval_seconds


# ----------------------------------------------------------------------------- setup


def copy_demo(source: Path, target: Path) -> None:
    """Copy a finished demo data root; served-traffic logs and BentoML scratch dirs stay behind."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        folder_path = Path(folder)
        if folder_path == source / "prediction_log":  # traffic-dependent: would dilute the drift check
            return set(names)
        if folder_path == source / "bentoml":
            return {n for n in names if n in ("tmp", "prometheus_multiproc_dir")}
        return set()

    shutil.copytree(source, target, ignore=ignore)


def weak_champion(paths) -> str:
    """Promote a quick untuned model by hand, so a tuned retraining can be proven better by the gate."""
    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.ml import model_registry
    from lakehouse.ml.candidates import TrainingOptions, train_candidate

    weak = train_candidate(paths, CHURN, TrainingOptions(tune=False, params={"num_leaves": 3, "num_boost_round": 8}))
    return model_registry.promote(paths, CHURN.name, weak["tag"], "bench_loop: a quick first model", action="manual")


def land_drifted_days(paths, days: int, magnitude: float, staging: Path) -> tuple[list[Path], int]:
    """Continue the world `days` days with usage dropping everywhere; the last day's files go to staging."""
    from lakehouse.demos.churn.generator import Drift, day_of
    from lakehouse.demos.churn.simulator import plan_continuation, run_continuation

    probe = plan_continuation(paths.landing, days=days)
    first = probe.config.first_day
    drifts = tuple(Drift("usage_drop", first, region=r, magnitude=magnitude) for r in REGIONS)
    plan = plan_continuation(paths.landing, days=days, drifts=drifts)
    for note in plan.notes:
        say(f"simulator: {note}")
    run_continuation(paths.landing, plan, days_per_minute=0, progress=lambda m: say(f"simulator: {m}"))
    last_date = plan.config.start + timedelta(days=plan.last_new_day)
    staged = []
    for f in sorted(paths.landing.glob("*/*.*")):
        if day_of(f) == last_date:
            target = staging / f.parent.name / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(f, target)
            staged.append(target)
    return staged, plan.last_new_day


def ingest_setup_days(defs, instance, paths, log: Path) -> tuple[str | None, str | None]:
    """Ingest the drifted days already in landing (one run per source with all its files), then publish them.

    Returns the landing and publish sensors' cursors.
    """
    landing, _, _ = tick(defs, instance, paths, "churn_landing_sensor")
    by_job: dict[str, list] = {}
    for request in getattr(landing, "run_requests", None) or []:
        by_job.setdefault(request.job_name, []).append(request)
    for job, requests in by_job.items():
        [op] = requests[0].run_config["ops"]
        files = [f for r in requests for f in r.run_config["ops"][op]["config"]["files"]]
        run = execute(job, {"ops": {op: {"config": {"files": files}}}}, {}, log)
        say(f"setup: {job} with {len(files)} files in {run.wall:.1f}s (success {run.success})")
        if not run.success:
            sys.exit(f"setup run {job} failed; see {log}")
    publish, _, _ = tick(defs, instance, paths, "churn_publish_sensor")
    [request] = publish.run_requests
    run = execute(request.job_name or "churn_publish_job", request.run_config, request.tags, log)
    say(f"setup: publish run in {run.wall:.1f}s (success {run.success})")
    return landing.cursor, publish.cursor


def code_location_import(samples: int) -> list[float]:
    """Seconds a fresh Python process takes to `import assets.definitions` (what every launched run pays)."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import assets.definitions"],
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - started)
    return times


# ----------------------------------------------------------------------------- timed part


class ChampionPoller(threading.Thread):
    """POST /model_info every 0.2 s; remember when the service first answers with another model than `old`."""

    def __init__(self, base: str, old: str) -> None:
        super().__init__(daemon=True)
        self.base, self.old, self.stop = base, old, threading.Event()
        self.seen: tuple[float, str] | None = None
        self.errors = 0

    def run(self) -> None:
        from bento_process import post_json

        while not self.stop.is_set():
            try:
                status, body = post_json(self.base, "/model_info", {})
                if status == 200 and body.get("model_version") not in (None, self.old):
                    self.seen = (time.time(), body["model_version"])
                    return
            except OSError:
                self.errors += 1
            time.sleep(0.2)


def machine() -> str:
    """nproc, CPU model, Python, load average."""
    cpu = platform.processor() or "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 drifted days and 2 import samples (a smoke run)")
    parser.add_argument("--drift-days", type=int, default=7, help="drifted days, the last one timed (drift window: 7)")
    parser.add_argument("--magnitude", type=float, default=0.6, help="usage drop in every region")
    parser.add_argument("--launch-samples", type=int, default=5)
    parser.add_argument("--demo-root", type=Path, default=ROOT / "data")
    parser.add_argument("--keep", action="store_true", help="keep the temp data root (its path is printed)")
    parser.add_argument("--execute-run", help=argparse.SUPPRESS)  # internal: one run in a fresh process
    args = parser.parse_args()
    if args.execute_run:
        return child_main(json.loads(args.execute_run))
    if args.quick:
        args.drift_days, args.launch_samples = min(args.drift_days, 3), min(args.launch_samples, 2)
    if not (args.demo_root / "registry" / "churn.json").exists():
        sys.exit(
            f"no finished demo at {args.demo_root}: run `make demo` first "
            "(or LAKEHOUSE_DATA_ROOT=<dir> .venv/bin/lakehouse demo and pass --demo-root <dir>)"
        )

    tmp = Path(tempfile.mkdtemp(prefix="bench_loop_"))
    try:
        report(run_loop(args, tmp), args)
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run_loop(args, tmp: Path) -> dict:
    """Set up, then time one drifted batch from landing to the new champion answering; the measurements."""
    from lakehouse.paths import DATA_ROOT_ENV, LakePaths

    paths = LakePaths(tmp / "data")
    os.environ[DATA_ROOT_ENV] = str(paths.root)  # also for the run processes and the service
    os.environ["DAGSTER_HOME"] = str(paths.root / "dagster")
    log = tmp / "runs.log"
    out: dict = {"machine_before": machine()}

    say(f"setup: copying {args.demo_root} to {paths.root}")
    copy_demo(args.demo_root, paths.root)
    say("setup: training and promoting a quick untuned champion")
    old = weak_champion(paths)
    say(f"setup: landing {args.drift_days} drifted days (usage -{args.magnitude:.0%} in every region)")
    staged, last_day = land_drifted_days(paths, args.drift_days, args.magnitude, tmp / "staged")

    from bento_process import bentoml_serve, post_json

    from assets.definitions import build_definitions
    from assets.headless import dagster_instance
    from assets.keys import DomainKeys
    from lakehouse.demos.churn.domain import CHURN
    from lakehouse.ml import model_registry

    defs = build_definitions(str(paths.root))
    instance = dagster_instance(paths)
    cursor, publish_cursor = ingest_setup_days(defs, instance, paths, log)
    wait_for_exits()  # nothing of the setup runs left on the cores
    say(f"setup: timing `import assets.definitions` in {args.launch_samples} fresh processes")
    out["import"] = code_location_import(args.launch_samples)
    out["day"], out["files"] = last_day, [f.name for f in staged]

    say("setup: starting `bentoml serve`")
    with bentoml_serve(paths) as base:
        assert post_json(base, "/model_info", {})[1]["model_version"] == old
        poller = ChampionPoller(base, old)
        out["machine_start"] = machine()
        say(f"timed: day {last_day} lands ({len(staged)} files)")
        poller.start()
        t0 = time.time()
        for f in staged:  # renamed in, as write_landing_day does: the sensor never sees half a file
            os.replace(f, paths.landing / f.parent.name / f.name)

        landing, out["landing_tick"], out["landing_interval"] = tick(
            defs, instance, paths, "churn_landing_sensor", cursor
        )
        out["slots"] = instance.get_concurrency_config().run_queue_config.max_concurrent_runs
        out["landing_runs"] = execute_side_by_side(landing.run_requests, out["slots"], log)
        out["landing_wall"] = time.time() - t0
        for run in out["landing_runs"]:
            run.steps = step_durations(instance, run.run_id)

        publish, out["publish_tick"], out["publish_interval"] = tick(
            defs, instance, paths, "churn_publish_sensor", publish_cursor
        )
        [request] = publish.run_requests
        run = execute(request.job_name or "churn_publish_job", request.run_config, request.tags, log)
        run.steps = step_durations(instance, run.run_id)
        out["publish_run"], out["drift"] = run, latest_metadata(instance, DomainKeys.of(CHURN).feature_drift)
        say(f"timed: publish {run.wall:.1f}s; drift {out['drift'].get('status')}: {out['drift'].get('reason')}")

        retraining, out["retraining_tick"], out["retraining_interval"] = tick(
            defs, instance, paths, "churn_retraining_sensor"
        )
        if not retraining.run_requests:
            out["retrain_skipped"] = getattr(retraining, "skip_message", None)
            say(f"timed: the retraining sensor did not fire: {out['retrain_skipped']}")
            poller.stop.set()
            return out
        [request] = retraining.run_requests
        out["trigger"] = request.tags.get("lakehouse/retrain_trigger")
        run = execute(request.job_name or "churn_retrain_job", request.run_config, request.tags, log)
        run.steps = step_durations(instance, run.run_id)
        out["retrain_run"], out["gate"] = run, latest_metadata(instance, DomainKeys.of(CHURN).champion_model)
        new = model_registry.champion(paths, CHURN.name)
        out["promoted_at"] = (paths.root / "registry" / "churn.json").stat().st_mtime
        say(f"timed: retrain {run.wall:.1f}s (trigger {out['trigger']}); champion {old} -> {new}")
        if new != old:
            poller.join(timeout=30)
        poller.stop.set()
        out.update(t0=t0, old=old, new=new, seen=poller.seen, poll_errors=poller.errors, machine_end=machine())
    return out


# ----------------------------------------------------------------------------- report


def steps_text(run: Run) -> str:
    """'start-up 3.0, labels 3.1, ..., run bookkeeping 4.2' (seconds; steps without the domain prefix)."""
    steps = ", ".join(f"{k.removeprefix('churn__')} {v:.1f}" for k, v in run.steps.items())
    # What the steps do not cover: Dagster's run start/end events and resource set-up, then the process exit.
    bookkeeping = run.finished - run.imported - sum(run.steps.values())
    return (
        f"start-up {run.launch:.1f}, {steps}, run bookkeeping {bookkeeping:.1f}; then the process exit "
        f"{run.exit_seconds or 0:.1f} (not waited for)"
    )


def landing_steps(runs: list[Run], top: int = 6) -> str:
    """The slowest steps summed over the landing runs, then the rest and the runs' start-ups and bookkeeping."""
    total: dict[str, float] = {}
    for run in runs:
        for key, seconds in run.steps.items():
            total[key] = total.get(key, 0.0) + seconds
    ranked = sorted(total.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k.removeprefix('churn__')} {v:.1f}" for k, v in ranked[:top])
    rest = sum(v for _, v in ranked[top:])
    outside = sum(r.wall for r in runs) - sum(total.values())
    exits = sum(r.exit_seconds or 0 for r in runs)
    return (
        f"{text}, {len(ranked) - top} other steps {rest:.1f}; start-up and bookkeeping {outside:.1f}; "
        f"then the process exits {exits:.1f} (not waited for)"
    )


def report(m: dict, args) -> None:
    """The Markdown table (stdout)."""
    wait_for_exits()
    launches = [r.launch for r in m["landing_runs"]]
    print(
        f"# Continuous-training loop at the demo size (6,000 customers), {args.drift_days} drifted days "
        f"(usage -{args.magnitude:.0%} in every region), day {m['day']} timed ({len(m['files'])} files)\n"
    )
    print(
        f"Machine: {m['machine_start']} at t0 (shared with other work; absolute times are noisy). "
        f"Runs: one fresh Python process each; landing runs {m['slots']} at a time (the instance's "
        f"max_concurrent_runs; different pools), the others alone; LightGBM 1 thread.\n"
    )
    landing_runs = m["landing_runs"]
    rows = [
        ("landing sensor tick", f"{m['landing_tick']:.2f}s", f"{len(landing_runs)} run requests", ""),
        (
            "landing runs (ingest -> silver)",
            f"{m['landing_wall']:.1f}s",
            f"{m['slots']} at a time, {sum(r.wall for r in landing_runs):.1f}s summed: "
            + ", ".join(
                f"{r.job.removeprefix('churn_').removesuffix('_landing_job')} {r.wall:.1f}" for r in landing_runs
            )
            + f" (start-up {statistics.median(launches):.1f}s each)",
            "",
        ),
        (
            "landing runs, summed by step",
            f"{sum(sum(r.steps.values()) for r in landing_runs):.1f}s in steps",
            landing_steps(landing_runs),
            "",
        ),
        ("publish sensor tick", f"{m['publish_tick']:.2f}s", "", ""),
    ]
    mon = m["publish_run"]
    drift = m["drift"]
    rows.append(("publish run (features, online store, scores, monitoring)", f"{mon.wall:.1f}s", steps_text(mon), ""))
    rows.append(
        (
            "drift check",
            drift.get("status", "?"),
            f"weighted drifted share {drift.get('weighted_drifted_share', float('nan')):.2f}; "
            f"{len(drift.get('drifted') or [])} drifted features; {drift.get('reference_rows')} reference / "
            f"{drift.get('current_rows')} current rows",
            "failed",
        )
    )
    rows.append(
        (
            "retraining sensor tick",
            f"{m['retraining_tick']:.2f}s",
            f"trigger {m.get('trigger') or 'none: ' + str(m.get('retrain_skipped'))}",
            "drift_check",
        )
    )
    if "retrain_run" in m:
        ret, gate = m["retrain_run"], m["gate"]
        rows.append(("retrain run", f"{ret.wall:.1f}s", steps_text(ret), ""))
        rows.append(
            (
                "gate",
                "promoted" if gate.get("promoted") else "refused",
                str(gate.get("reasons", "")).replace("\n", " "),
                "promoted",
            )
        )
    seen = m.get("seen")
    if seen:
        t1 = seen[0]
        pickup = t1 - m["promoted_at"]
        rows.append(
            (
                "service pickup (champion pointer -> /model_info)",
                f"{pickup:.1f}s",
                f"poll every 0.2 s; the retrain run went on {ret.finished - t1:.1f}s after t1 "
                "(model card, batch scores, bento)",
                "",
            )
        )
        total = t1 - m["t0"]
        runs = len(landing_runs) + 2
        startup = sum(r.launch for r in landing_runs) + mon.launch + ret.launch
        rows.append(
            (
                "**t1 - t0: batch lands -> new champion answers** (no sensor waits)",
                f"**{total:.1f}s**",
                f"{runs} runs; their start-ups summed {startup:.1f}s",
                f"< {GOAL_SECONDS:.0f}s: " + ("pass" if total < GOAL_SECONDS else "miss"),
            )
        )
        intervals = (m["landing_interval"], m["publish_interval"], m["retraining_interval"])
        worst = total + sum(intervals)
        allowance = GOAL_SECONDS + max(intervals)
        rows.append(
            (
                "worst case: + one interval per sensor hop",
                f"{worst:.1f}s",
                f"intervals: landing {intervals[0]}s + publish {intervals[1]}s + retraining "
                f"{intervals[2]}s = {sum(intervals)}s (the daemon's run queue loop not included)",
                f"< {GOAL_SECONDS:.0f}s + one interval ({allowance:.0f}s): "
                + ("pass" if worst < allowance else "miss"),
            )
        )
    else:
        rows.append(("**t1 - t0**", "not reached", "no new champion answered (see the gate/trigger rows)", "miss"))
    imports = m["import"]
    rows.append(
        (
            "fresh `import assets.definitions` (per launched run)",
            f"{statistics.median(imports):.1f}s",
            f"median of {len(imports)} ({min(imports):.1f}-{max(imports):.1f}); included in the run start-ups above",
            "",
        )
    )
    rows.append(
        (
            "drift computation at 100k rows x 21 features",
            "see bench_drift.py",
            "`python bench/bench_drift.py --rows 100000`",
            "",
        )
    )
    print("| stage | time | detail | goal |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(c).replace("|", "/") for c in row) + " |")
    if drift.get("status") != "failed":
        print(f"\nThe drift check did not fail: {drift.get('reason')} (try more --drift-days or a larger --magnitude).")
    if "retrain_run" in m and not m["gate"].get("promoted"):
        print(f"\nThe gate refused the retrained model: {m['gate'].get('reasons')}")
    print(
        "\nSensor ticks are evaluated right after the previous stage; the daemon ticks each sensor at most once per "
        "minimum interval, hence the worst-case row. A landing run goes as far as silver; the publish sensor waits "
        "until no landing run is queued or running, so the features and the online store are rebuilt once per "
        "burst of files."
    )
    print(f"\nMachine at the end: {m.get('machine_end', '?')}.")


if __name__ == "__main__":
    main()
