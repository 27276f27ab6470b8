"""One writer per data root: headless commands hold an exclusive lock on <data root>/.lakehouse.lock.

A second `lakehouse materialize`, `demo` or `run` on the same data root waits for the first (saying
for whom) instead of racing it; the daemon's sensors request nothing while a command holds it. An
advisory `flock`: released by the kernel when the holder exits, even on `kill -9`.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lakehouse.paths import LakePaths


def _lock_path(paths: LakePaths) -> Path:
    paths.root.mkdir(parents=True, exist_ok=True)
    return paths.root / ".lakehouse.lock"


def holder(paths: LakePaths) -> dict[str, Any] | None:
    """Who holds the data root's lock ({"pid", "command"}), or None when it is free."""
    with open(_lock_path(paths), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            try:
                return json.loads(f.read() or "{}") or {"pid": None, "command": "another command"}
            except json.JSONDecodeError:
                return {"pid": None, "command": "another command"}
        fcntl.flock(f, fcntl.LOCK_UN)
        return None


@contextmanager
def data_root_lock(paths: LakePaths, command: str | None = None) -> Iterator[None]:
    """Hold the data root's lock for the block; wait (saying for whom) while another command holds it."""
    command = command or " ".join(["lakehouse", *sys.argv[1:]])
    with open(_lock_path(paths), "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            other = f.read().strip() or "another command"
            print(f"waiting for the command holding {paths.root}: {other}", file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(json.dumps({"pid": os.getpid(), "command": command}))
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
