"""The live producer (`lakehouse simulate`): it continues the landing folder's world, day by day, at a pace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from lakehouse.demos.churn.generator import SOURCES, Drift, GeneratorConfig, day_of, generate
from lakehouse.demos.churn.simulator import (
    RECORD_NAME,
    SimulationConflict,
    plan_continuation,
    read_generator_record,
    run_continuation,
    write_generator_record,
)
from lakehouse.lake.ingestion import landing_files
from lakehouse.paths import DATA_ROOT_ENV, LakePaths
from lakehouse_cli.main import main

WORLD = GeneratorConfig(customers=300, days=20, seed=3, bad_row_rate=0.02, bad_file_rate=0.05)
DRIFT = Drift("price_rise", start_day=24, plan="basic", magnitude=0.5)


def files(root: Path) -> dict[str, bytes]:
    """Every landing file's bytes by relative path (the record and hidden files left out)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith((".", "_"))
    }


def demo_landing(landing: Path, config: GeneratorConfig = WORLD) -> Path:
    """What `lakehouse generate` leaves: the files and the record of their config."""
    generate(landing, config)
    write_generator_record(landing, config)
    return landing


def simulate(landing: Path, days: int, **options) -> list[str]:
    """Continue as fast as possible; return the progress messages."""
    messages: list[str] = []
    run_continuation(landing, plan_continuation(landing, days, **options), days_per_minute=0, progress=messages.append)
    return messages


def test_continuations_write_the_same_bytes_as_one_shot_generation(tmp_path: Path) -> None:
    landing = demo_landing(tmp_path / "live")
    simulate(landing, 6, drifts=(DRIFT,))  # days 20..25, the drift from day 24
    simulate(landing, 4)  # days 26..29: the recorded drift still applies
    generate(tmp_path / "once", replace(WORLD, days=30, drifts=(DRIFT,)))
    generate(tmp_path / "window", replace(WORLD, days=30, drifts=(DRIFT,), first_day=20, last_day=29))
    live, once = files(landing), files(tmp_path / "once")
    assert live == once
    assert {k: v for k, v in live.items() if day_of(Path(k)) >= date(2025, 1, 21)} == files(tmp_path / "window")
    assert read_generator_record(landing) == replace(WORLD, days=120, drifts=(DRIFT,))  # the world, no window


def test_a_continuation_reports_each_day_written(tmp_path: Path) -> None:
    messages = simulate(demo_landing(tmp_path), 5, drifts=(DRIFT,))
    days = [m for m in messages if m.startswith("day ")]
    assert [m.split()[1:3] for m in days] == [
        [str(d), str(date(2025, 1, 1) + timedelta(d)) + ":"] for d in range(20, 25)
    ]
    assert all("files" in m and "rows" in m and "active customers" in m for m in days)
    assert "drift starts: price_rise basic +50%" in days[4]


def test_a_label_delay_from_the_next_day_moves_cancellations_later_and_loses_none(tmp_path: Path) -> None:
    clean = replace(WORLD, customers=600, bad_row_rate=0.0, bad_file_rate=0.0)
    landing = demo_landing(tmp_path / "live", clean)
    simulate(landing, 15, label_delay_days=3)  # days 20..34; cancellations from day 20 on land 3 days late
    generate(tmp_path / "now", replace(clean, days=32))

    def cancellations(root: Path) -> dict[str, date]:
        return {
            line: day_of(p)
            for p in sorted((root / "cancellations").iterdir())
            for line in p.read_text().splitlines()[1:]
        }

    live, now = cancellations(landing), cancellations(tmp_path / "now")
    late = {row for row, day in now.items() if day >= date(2025, 1, 21)}
    assert len(late) >= 3 and len(now) > len(late)
    assert live.keys() == now.keys()  # days 0..31 happened; each cancellation landed exactly once
    assert all(live[row] == day + timedelta(3 if row in late else 0) for row, day in now.items())


def test_the_pace_holds_and_zero_means_no_wait(tmp_path: Path) -> None:
    landing = demo_landing(tmp_path)
    started = time.monotonic()
    run_continuation(landing, plan_continuation(landing, 4), days_per_minute=300)  # 0.2 s per day
    paced = time.monotonic() - started
    started = time.monotonic()
    run_continuation(landing, plan_continuation(landing, 4), days_per_minute=0)
    fast = time.monotonic() - started
    assert paced >= 0.6 and fast < paced - 0.3  # three waits of 0.2 s; the same work without them


def test_a_stop_request_ends_the_run_between_days_without_half_files(tmp_path: Path) -> None:
    landing, stop = demo_landing(tmp_path), threading.Event()

    def progress(message: str) -> None:
        if message.startswith("day 21 "):
            stop.set()

    result = run_continuation(landing, plan_continuation(landing, 10), days_per_minute=0, progress=progress, stop=stop)
    assert result.stopped and result.days_written == 2
    assert max(day_of(Path(k)) for k in files(landing)) == date(2025, 1, 22)
    assert not [p for p in landing.rglob(".*")]
    simulate(landing, 1)  # the next run picks up after the last day written
    assert max(day_of(Path(k)) for k in files(landing)) == date(2025, 1, 23)


def test_options_that_contradict_the_record_are_refused_with_the_reason(tmp_path: Path) -> None:
    landing = demo_landing(tmp_path)
    with pytest.raises(SimulationConflict, match="records seed=3, but seed=4"):
        plan_continuation(landing, 5, seed=4)
    with pytest.raises(SimulationConflict, match="records customers=300"):
        plan_continuation(landing, 5, customers=301)
    with pytest.raises(SimulationConflict, match="starts on day 10, but landing already holds days up to 19"):
        plan_continuation(landing, 5, drifts=(replace(DRIFT, start_day=10),))
    simulate(landing, 1, label_delay_days=2)
    with pytest.raises(SimulationConflict, match="already arrive 2 days late"):
        plan_continuation(landing, 5, label_delay_days=4)
    assert plan_continuation(landing, 5, seed=3, customers=300, label_delay_days=2).config.first_day == 21


def test_without_a_record_the_newest_day_must_match_the_simulation(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate(landing, replace(WORLD, bad_row_rate=0.002, bad_file_rate=0.01))  # an older demo: no record
    before = files(landing)
    with pytest.raises(SimulationConflict, match="landing holds another world"):
        run_continuation(landing, plan_continuation(landing, 3, seed=4), days_per_minute=0)
    assert files(landing) == before and not (landing / RECORD_NAME).exists()  # nothing written
    simulate(landing, 3, customers=300, seed=3)  # with the options it was made with, it continues
    assert files(landing).items() >= before.items() and len(files(landing)) > len(before)


def test_the_cli_generates_then_continues_and_ingestion_ignores_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path / "data"))
    paths = LakePaths(tmp_path / "data")
    assert main(["generate", "--customers", "200", "--days", "10", "--seed", "5"]) == 0
    assert read_generator_record(paths.landing) == GeneratorConfig(
        customers=200, seed=5, bad_row_rate=0.002, bad_file_rate=0.01
    )
    assert main(["simulate", "--days", "3", "--no-wait", "--drift-from", "11", "--label-delay-days", "2"]) == 0
    out = capsys.readouterr().out
    assert "day 12 2025-01-13:" in out and "wrote 3 days (10..12)" in out and "continues from day 13" in out
    assert max(day_of(p) for p in (paths.landing / "usage").iterdir()) == date(2025, 1, 13)
    assert all(p.parent.name == s for s in SOURCES for p in landing_files(paths, s))
    assert main(["simulate", "--days", "3", "--seed", "6"]) == 2
    assert "records seed=5, but seed=6 was asked for" in capsys.readouterr().err


def test_ctrl_c_stops_the_cli_cleanly_after_the_day_it_is_writing(tmp_path: Path) -> None:
    landing = demo_landing(tmp_path / "data" / "landing")
    env = {**os.environ, DATA_ROOT_ENV: str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-m", "lakehouse_cli.main", "simulate", "--days", "100", "--days-per-minute", "600"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in process.stdout:  # wait until it is writing days
        lines.append(line)
        if line.strip().startswith("day 21 "):
            break
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "stopped: wrote" in out
    written = max(day_of(Path(k)) for k in files(tmp_path / "data" / "landing"))
    assert date(2025, 1, 22) <= written < date(2025, 1, 1) + timedelta(119)
    assert not [p for p in landing.rglob(".*")]
