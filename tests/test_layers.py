"""The house rules: the core imports neither Dagster nor BentoML, and every import points down the layers."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a module may import its own layer and the layers below it, never above.
CORE_LAYERS = [
    {"lakehouse", "lakehouse.paths", "lakehouse.io", "lakehouse.lock"},
    {"lakehouse.declarations"},
    {"lakehouse.demos"},
    {"lakehouse.domains"},
    {"lakehouse.lake"},
    {"lakehouse.feature_store"},
    {"lakehouse.ml"},
    {"lakehouse.serving"},
    {"lakehouse.monitoring"},
]
# Above the core: the Dagster code location, then the services and the command line.
PACKAGES_ABOVE = {
    "lakehouse": {"assets", "bentos", "lakehouse_cli"},
    "assets": {"bentos", "lakehouse_cli"},
    "bentos": {"assets", "lakehouse_cli"},
}


def core_modules() -> list[str]:
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "lakehouse").rglob("*.py")
    )


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def layer(module: str) -> int | None:
    for index, members in reversed(list(enumerate(CORE_LAYERS))):
        if any(module == m or module.startswith(m + ".") for m in members if m != "lakehouse") or module in members:
            return index
    return None


def test_importing_every_core_module_loads_neither_dagster_nor_bentoml():
    probe = (
        "import importlib, json, sys\n"
        f"for name in {core_modules()!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'bentoml'})))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == []


def test_core_modules_import_only_their_own_layer_and_the_ones_below():
    upward = []
    for module in core_modules():
        path = ROOT / (
            module.replace(".", "/") + ("/__init__.py" if (ROOT / module.replace(".", "/")).is_dir() else ".py")
        )
        for target in imported(path):
            if not target.startswith("lakehouse.") or layer(target) is None:
                continue
            if layer(target) > layer(module):
                upward.append(f"{module} imports {target}")
    assert not upward, upward


def test_no_package_imports_one_above_it():
    upward = []
    for package, above in PACKAGES_ABOVE.items():
        for path in (ROOT / package).rglob("*.py"):
            for target in imported(path):
                if target.split(".")[0] in above:
                    upward.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not upward, upward


def test_the_layer_check_catches_an_upward_import():
    assert layer("lakehouse.monitoring.drift") > layer("lakehouse.declarations.domain")
    assert layer("lakehouse.paths") == 0 and layer("lakehouse.domains") == 3
