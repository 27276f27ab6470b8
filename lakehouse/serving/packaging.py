"""Packaging: `bentoml build` of a domain's service, pinned to one model version (one bento per champion).

The bento's version is the model's version, so building the same champion twice reuses the bento.
`bentoml build` runs as a subprocess with BENTOML_HOME set to the data root's store: the bento lands
beside the models it references. No BentoML import here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from lakehouse.declarations.domain import Domain
from lakehouse.ml.model_registry import bentoml_home
from lakehouse.paths import REPO_ROOT, LakePaths

BENTOFILE = REPO_ROOT / "bentos" / "bentofile.yaml"  # every domain's bento builds from a copy naming its service


def service_name(domain: Domain) -> str:
    return f"{domain.name}_service"


def bento_dir(paths: LakePaths, domain: Domain, version: str) -> Path:
    return paths.bentoml_home / "bentos" / service_name(domain) / version


def _bentoml_cli() -> str:
    # The bentoml of this interpreter's environment, not whatever is first on PATH.
    local = Path(sys.executable).parent / "bentoml"
    return str(local) if local.exists() else shutil.which("bentoml") or "bentoml"


def service_arguments(domain: Domain) -> list[str]:
    """The `--arg`s a domain's service needs (its declaration's service_args), as command-line words."""
    return [word for name, value in domain.service_args.items() for word in ("--arg", f"{name}={value}")]


def bentofile(domain: Domain, folder: Path) -> Path:
    """bentos/bentofile.yaml with the domain's service, written to folder."""
    spec = yaml.safe_load(BENTOFILE.read_text())
    spec["service"] = domain.service
    spec["labels"] = {"domain": domain.name}
    path = folder / "bentofile.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def build_bento(paths: LakePaths, domain: Domain, model_tag: str) -> dict[str, Any]:
    """Build (or reuse) the bento of `model_tag`; return its tag, path, size and whether it was reused."""
    version = model_tag.split(":")[-1]
    tag = f"{service_name(domain)}:{version}"
    target = bento_dir(paths, domain, version)
    reused = (target / "bento.yaml").exists()
    seconds = 0.0
    if not reused:
        env = {
            **os.environ,
            "BENTOML_HOME": str(bentoml_home(paths)),
            "LAKEHOUSE_DATA_ROOT": str(paths.root),
            "BENTOML_DO_NOT_TRACK": "True",
        }
        args = ["--arg", f"model_tag={model_tag}", *service_arguments(domain)]  # pinned to one model (and dataset)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run(
                [
                    _bentoml_cli(),
                    "build",
                    "-f",
                    str(bentofile(domain, Path(tmp))),
                    *args,
                    "--version",
                    version,
                    "--label",
                    f"model={model_tag}",
                    str(REPO_ROOT),
                ],
                env=env,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
            )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(
                f"bentoml build of {model_tag} failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}"
            )
    files = [f for f in target.rglob("*") if f.is_file()]
    return {
        "tag": tag,
        "model_tag": model_tag,
        "path": target,
        "reused": reused,
        "build_seconds": round(seconds, 2),
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
        "serve_command": f"BENTOML_HOME={paths.bentoml_home} LAKEHOUSE_DATA_ROOT={paths.root} bentoml serve {tag}",
    }


def pinned_model(paths: LakePaths, domain: Domain, version: str) -> str | None:
    """The model tag a built bento is pinned to (from its bento.yaml args), or None if there is no such bento."""
    import yaml

    info = bento_dir(paths, domain, version) / "bento.yaml"
    return (yaml.safe_load(info.read_text()).get("args") or {}).get("model_tag") if info.exists() else None
