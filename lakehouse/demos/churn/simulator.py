"""A live producer for the churn demo: continue the landing folder's simulation one day at a time, at a pace.

`lakehouse generate` and `lakehouse demo` record the generator config they used in
`<landing>/_generator.json` (outside every source folder, so ingestion never sees it). A continuation
reads it back, steps one simulation through the days already in landing without writing them (and
checks the newest of them against what is there), then writes each following day as it is simulated:
the same bytes `generate` with the same config would write for that day. Drifts and a label delay
can be added for days still to come; they are recorded, so the next continuation keeps them.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

from lakehouse.demos.churn.generator import (
    SOURCES,
    Drift,
    GeneratorConfig,
    LandingDay,
    config_from_record,
    config_record,
    day_of,
    landing_path,
    simulate_days,
    write_landing_day,
)

RECORD_NAME = "_generator.json"
# What `lakehouse demo` generated before it recorded its config: assumed for a landing folder without a record.
UNRECORDED_DEMO = GeneratorConfig(
    customers=6000, seed=42, start=date(2025, 1, 1), bad_row_rate=0.002, bad_file_rate=0.01
)
# A drift the demo's champion has never seen: the basic plan's price rises by half, and its customers churn more.
DEMO_DRIFT = Drift("price_rise", start_day=0, plan="basic", magnitude=0.5)


class SimulationConflict(ValueError):
    """The requested continuation does not fit the simulation the landing folder already holds."""


def write_generator_record(landing: Path, config: GeneratorConfig) -> Path:
    """Record the config a landing folder's files come from (atomically, as every landing file)."""
    target = Path(landing) / RECORD_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(json.dumps(config_record(config), indent=2) + "\n")
    os.replace(tmp, target)
    return target


def read_generator_record(landing: Path) -> GeneratorConfig | None:
    """The recorded config of a landing folder's simulation, or None if it has no record."""
    path = Path(landing) / RECORD_NAME
    return config_from_record(json.loads(path.read_text())) if path.exists() else None


def last_landing_day(landing: Path, start: date) -> int:
    """The index of the newest simulated day with a landing file (-1 if there is none)."""
    days = [
        day_of(p)
        for source in SOURCES
        if (Path(landing) / source).is_dir()
        for p in (Path(landing) / source).iterdir()
        if not p.name.startswith(".") and p.is_file()
    ]
    return (max(days) - start).days if days else -1


@dataclass(frozen=True)
class Continuation:
    """What a continuation will do: the whole simulation, with the days to write as its output window."""

    config: GeneratorConfig  # first_day..last_day: the new days
    notes: tuple[str, ...] = ()  # what was assumed or changed, for the user

    @property
    def last_existing_day(self) -> int:
        """The newest day already in landing (-1: none)."""
        return self.config.first_day - 1

    @property
    def last_new_day(self) -> int:
        """The last day the continuation writes."""
        return self.config.days - 1


def plan_continuation(
    landing: Path,
    days: int,
    *,
    customers: int | None = None,
    seed: int | None = None,
    start: date | None = None,
    drifts: tuple[Drift, ...] = (),
    label_delay_days: int | None = None,
) -> Continuation:
    """The continuation of the landing folder's simulation by `days` days, or SimulationConflict saying why not.

    customers, seed and start (None: the record's) must match the record if there is one; drifts must
    start after the days already in landing; the label delay can change once, from the next day on.
    """
    if days < 1:
        raise SimulationConflict(f"--days must be at least 1, got {days}")
    recorded = read_generator_record(landing)
    notes: list[str] = []
    if recorded is None:
        demo = UNRECORDED_DEMO
        recorded = replace(
            demo,
            customers=demo.customers if customers is None else customers,
            seed=demo.seed if seed is None else seed,
            start=demo.start if start is None else start,
        )
        what = "continuing" if last_landing_day(landing, recorded.start) >= 0 else "starting a new simulation"
        notes.append(
            f"no {RECORD_NAME} in {landing}: {what} with customers={recorded.customers}, "
            f"seed={recorded.seed}, start={recorded.start}"
        )
    else:
        for name, value in (("customers", customers), ("seed", seed), ("start", start)):
            if value is not None and value != getattr(recorded, name):
                raise SimulationConflict(
                    f"{landing / RECORD_NAME} records {name}={getattr(recorded, name)}, but {name}={value} was "
                    f"asked for: a continuation runs the same simulation (leave the option out, or delete "
                    f"{landing} and the lake to start another)"
                )
    last = last_landing_day(landing, recorded.start)
    new = [d for d in drifts if d not in recorded.drifts]  # a recorded drift is already part of the world
    for drift in new:
        if drift.start_day <= last:
            raise SimulationConflict(
                f"drift {drift.kind} starts on day {drift.start_day}, but landing already holds days up to {last}: "
                f"a drift can only start on a day still to come (> {last})"
            )
        notes.append(f"drift {_describe(drift)} from day {drift.start_day}")
    config = replace(recorded, drifts=recorded.drifts + tuple(new))
    if label_delay_days is not None and label_delay_days != recorded.label_delay_days:
        if label_delay_days < 0:
            raise SimulationConflict(f"--label-delay-days must be >= 0, got {label_delay_days}")
        if recorded.label_delay_days and recorded.label_delay_from <= last:
            raise SimulationConflict(
                f"labels in landing already arrive {recorded.label_delay_days} days late (cancellations from day "
                f"{recorded.label_delay_from} on); changing the delay again is not supported"
            )
        config = replace(config, label_delay_days=label_delay_days, label_delay_from=last + 1)
        notes.append(f"cancellations from day {last + 1} on land {label_delay_days} days late")
    config = replace(config, days=last + 1 + days, first_day=last + 1, last_day=last + days)
    return Continuation(config, tuple(notes))


def _describe(drift: Drift) -> str:
    """'price_rise basic +50%' or 'usage_drop south -25%'."""
    if drift.kind == "price_rise":
        return f"price_rise {drift.plan} +{drift.magnitude:.0%}"
    return f"usage_drop {drift.region} -{drift.magnitude:.0%}"


@dataclass
class SimulationResult:
    """What a continuation wrote."""

    days_written: int = 0
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))  # data rows per source
    stopped: bool = False  # stopped early on request (Ctrl-C)


def run_continuation(
    landing: Path,
    plan: Continuation,
    days_per_minute: float = 1.0,
    progress: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> SimulationResult:
    """Write the plan's days into landing, one at a time, holding the pace (0: as fast as possible).

    `stop` (set by Ctrl-C, see stop_on_interrupt) is honoured between days: a day's files are all written.
    Raises SimulationConflict if the newest day already in landing is not what this simulation gives.
    """
    landing, config, stop = Path(landing), plan.config, stop or threading.Event()
    say = progress or (lambda _: None)
    last = plan.last_existing_day
    interval = 60.0 / days_per_minute if days_per_minute > 0 else 0.0
    result = SimulationResult()
    # The days already in landing are simulated again without writing (fast, the simulation is vectorized);
    # the newest of them is compared with its files, so a continuation of another world fails loudly.
    days = simulate_days(replace(config, first_day=max(last, 0)))
    if last >= 0:
        say(f"simulating days 0..{last} again (already in landing) to continue from day {last + 1}")
    started: float | None = None
    for landing_day in days:
        if landing_day.day <= last:
            if landing_day.day == last:
                _check_continuity(landing, landing_day, config)
            continue
        if started is None:
            write_generator_record(landing, config)  # the files written from here on come from this config
            started = time.monotonic()
        else:
            _sleep_until(started + result.days_written * interval, stop)
        if stop.is_set():
            break
        write_landing_day(landing, landing_day)
        rows = {s: r for s, (_, r) in landing_day.files.items()}
        for source, n in rows.items():
            result.rows[source] += n
        result.days_written += 1
        starting = [_describe(d) for d in config.drifts if d.start_day == landing_day.day]
        say(
            f"day {landing_day.day} {landing_day.date}: {len(rows)} files, {sum(rows.values()):,} rows, "
            f"{landing_day.active:,} active customers"
            + (f"  <- drift starts: {', '.join(starting)}" if starting else "")
        )
    result.stopped = stop.is_set() and result.days_written < plan.last_new_day - last
    return result


def _sleep_until(deadline: float, stop: threading.Event) -> None:
    """Sleep until the monotonic deadline or until stop is set, whichever comes first."""
    # Short sleeps and is_set, never stop.wait: the Ctrl-C handler sets the event in this same thread, and
    # Event.wait holds the lock that set needs.
    while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))


def _check_continuity(landing: Path, landing_day: LandingDay, config: GeneratorConfig) -> None:
    """Raise SimulationConflict unless the day's files in landing are the bytes this simulation gives."""
    compared = 0
    for source, (data, _) in landing_day.files.items():
        path = landing_path(landing, source, landing_day.date)
        if path.exists():
            compared += 1
            if path.read_bytes() != data:
                raise SimulationConflict(
                    f"{path} is not what the simulation (customers={config.customers}, seed={config.seed}, "
                    f"start={config.start}, drifts={len(config.drifts)}) gives for that day: landing holds "
                    f"another world. Pass the options it was generated with, or delete {landing} and the lake "
                    f"to start over"
                )
    if landing_day.files and not compared:
        raise SimulationConflict(f"none of day {landing_day.day}'s files are in {landing}: cannot continue it")


@contextmanager
def stop_on_interrupt() -> Iterator[threading.Event]:
    """An event that the first Ctrl-C sets (finish the day, then stop); a second Ctrl-C interrupts at once."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):  # no printing here: it could land in the middle of another print
        stop.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
