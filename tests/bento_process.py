"""A real `bentoml serve` subprocess for tests and benchmarks: started on a free port, ready-checked, always stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lakehouse.paths import DATA_ROOT_ENV, REPO_ROOT, LakePaths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServeProcess:
    """A started `bentoml serve`: its process (leader of its own process group), port and log file."""

    proc: subprocess.Popen
    port: int
    log: BinaryIO

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90, probe: str = "/readyz") -> None:
        """Poll the probe until 200; fail if the server exits or takes longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"bentoml serve exited early: {self.log.name}"
            try:
                with urllib.request.urlopen(f"{self.url}{probe}", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"bentoml serve not ready within {timeout:.0f} s: {self.log.name}"
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM the process group (a clean shutdown flushes the prediction log), SIGKILL if stuck."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()


def start_serve(
    paths: LakePaths,
    target: str = "bentos.churn_service:ChurnService",
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    command: list[str] | None = None,
    log_dir: Path | None = None,
) -> ServeProcess:
    """Start `bentoml serve TARGET [ARGS]` (a service path or a bento tag) on the data root and a free port.

    `command` replaces the bentoml command line (e.g. `lakehouse serve NAME`); "--port <free port>" is
    appended. The log goes to `log_dir` (default: beside the data root). Not ready yet: see wait_ready.
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "BENTOML_HOME"}
    # As `make serve` runs it: a service module finds the data root's models by itself. A bento tag is
    # looked up in BentoML's store, which BENTOML_HOME names (as the README's command sets it).
    serving_a_bento = command is None and not (REPO_ROOT / (target.split(":")[0].replace(".", "/") + ".py")).exists()
    if serving_a_bento:
        env["BENTOML_HOME"] = str(paths.root / "bentoml")
    env.update({DATA_ROOT_ENV: str(paths.root), "BENTOML_DO_NOT_TRACK": "True", **(extra_env or {})})
    env.pop("LAKEHOUSE_API_KEY", None) if "LAKEHOUSE_API_KEY" not in (extra_env or {}) else None
    bentoml_cli = str(Path(sys.executable).parent / "bentoml")
    name = target.split(":")[-1] if command is None else command[-1]
    log = open((log_dir or paths.root.parent) / f"bentoml_serve_{name}_{port}.log", "wb")
    argv = (
        [*command, "--port", str(port)]
        if command
        else [bentoml_cli, "serve", target, *args, "--port", str(port), "--host", "127.0.0.1"]
    )
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return ServeProcess(proc, port, log)


@contextmanager
def bentoml_serve(
    paths: LakePaths,
    target: str = "bentos.churn_service:ChurnService",
    extra_env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    command: list[str] | None = None,
) -> Iterator[str]:
    """start_serve, ready-checked and always stopped; yields its base URL."""
    server = start_serve(paths, target, extra_env, args, command)
    try:
        server.wait_ready()
        yield server.url
    finally:
        server.stop()


def post_json(base: str, path: str, payload: object, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    """POST JSON; the status and the decoded body (errors included)."""
    request = urllib.request.Request(
        base + path, data=json.dumps(payload).encode(), headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")
