"""One writer per data root: a second headless command waits for the first, and the daemon's sensors hold off."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import sensor_tick

from lakehouse.lock import data_root_lock, holder
from lakehouse.paths import REPO_ROOT, LakePaths

HOLD = """
import sys, time
from pathlib import Path
from lakehouse.lock import data_root_lock
from lakehouse.paths import LakePaths
with data_root_lock(LakePaths(Path(sys.argv[1])), command="lakehouse materialize"):
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(paths: LakePaths, seconds: float) -> subprocess.Popen:
    """Another process, as a second `lakehouse materialize` would be, holding the data root for `seconds`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(paths.root), str(seconds)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_second_command_waits_for_the_first_and_says_for_whom(paths: LakePaths, capsys) -> None:
    assert holder(paths) is None
    other = hold_lock(paths, 3)
    try:
        assert holder(paths) == {"pid": other.pid, "command": "lakehouse materialize"}
        started = time.monotonic()
        with data_root_lock(paths, command="lakehouse run orders"):
            waited = time.monotonic() - started
            assert holder(paths)["command"] == "lakehouse run orders"
        assert waited > 2  # the first held it for 3 s
        assert "waiting for the command holding" in capsys.readouterr().err
    finally:
        other.kill()
        other.wait()
    assert holder(paths) is None


def test_a_killed_holder_releases_the_data_root(paths: LakePaths) -> None:
    other = hold_lock(paths, 60)
    other.kill()  # kill -9: the kernel drops the lock with the process
    other.wait()
    assert holder(paths) is None


@pytest.mark.parametrize("sensor", ["churn_landing_sensor", "churn_publish_sensor", "churn_retraining_sensor"])
def test_the_daemons_sensors_request_nothing_while_a_command_holds_the_data_root(paths: LakePaths, sensor) -> None:
    other = hold_lock(paths, 30)
    try:
        with dg.instance_for_test() as instance:
            result = sensor_tick(paths, instance, sensor)
        assert result.run_requests == []
        assert (
            "`lakehouse materialize` (pid" in result.skip_message and "is writing this data root" in result.skip_message
        )
    finally:
        other.kill()
        other.wait()


def test_the_lock_file_lives_in_the_data_root(paths: LakePaths) -> None:
    with data_root_lock(paths, command="x"):
        assert Path(paths.root / ".lakehouse.lock").exists()
