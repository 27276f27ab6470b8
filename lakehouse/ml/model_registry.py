"""The model registry: LightGBM text models in a BentoML store under the data root, a champion per domain, experiments.

Layout under the data root:
  bentoml/models/<domain>_model/<version>/   BentoML's model store (model.txt, model.yaml)
  registry/<domain>.json                     the champion pointer and its history
  lake/experiments/*.parquet                 one row per training run
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import uuid
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import polars as pl

from lakehouse.io import write_json_atomic, write_parquet_atomic
from lakehouse.ml.bentoml_store import model_store, set_default_store
from lakehouse.paths import REPO_ROOT, LakePaths

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"  # the full record; BentoML's own metadata keeps a summary (it refuses nulls)
ACTIONS = ("promote", "rollback", "manual")
LIBRARIES = ("lightgbm", "bentoml", "polars", "duckdb", "feast", "dagster", "numpy", "pandas", "scikit-learn")

RUN_SCHEMA = pl.Schema(
    {
        "run_id": pl.String(),
        "domain": pl.String(),
        "model_tag": pl.String(),
        "params": pl.String(),
        "metrics": pl.String(),
        "data_versions": pl.String(),
        "decision": pl.String(),
        "reasons": pl.List(pl.String()),
        "at": pl.Datetime("us", "UTC"),
    }
)


class RegistryError(Exception):
    """A registry request that cannot be honoured: unknown model, nothing to roll back to, and the like."""


class ModelIntegrityError(RegistryError):
    """A stored model file whose SHA-256 differs from the one recorded when it was saved."""


def bentoml_home(paths: LakePaths) -> Path:
    """The BentoML home under the data root, exported as BENTOML_HOME for this process and its children."""
    home = paths.bentoml_home
    (home / "models").mkdir(parents=True, exist_ok=True)
    # BentoML resolves BENTOML_HOME lazily, on first use of its default store: `bentoml serve` and
    # BentoModel(...) in this process (or started from it) then find the same models we save.
    os.environ["BENTOML_HOME"] = str(home)
    # Otherwise BentoML posts a usage event to its servers on every model save.
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return home


def use_as_default_store(paths: LakePaths) -> None:
    """Point BentoML's process-wide default model store (what BentoModel(tag) resolves in) at this data root.

    `bentoml serve` fixes that default from BENTOML_HOME (else ~/bentoml) before it imports the service,
    so setting the variable then is too late: a plain `bentoml serve` would look for the champion there.
    """
    set_default_store(bentoml_home(paths), _store(paths))


def _store(paths: LakePaths) -> Any:
    """The BentoML model store of this data root."""
    # Passed explicitly to every bentoml.models call: BentoML's default store is a process-wide
    # singleton fixed at first use, and would ignore a second data root (tests use one per test).
    return model_store(bentoml_home(paths) / "models")


def code_version() -> str | None:
    """The git commit of the repository, suffixed -dirty if tracked files changed; None outside a checkout."""
    git = ["git", "-C", str(REPO_ROOT)]
    # GIT_OPTIONAL_LOCKS=0: a status query must not rewrite the index behind a concurrent git command.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True, env=env)
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True, env=env
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("-dirty" if status.stdout.strip() else "")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape a model, plus Python's."""
    import platform

    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            pass
    return versions


def _jsonable(value: Any) -> Any:
    """Numpy scalars and arrays as Python values, dates as ISO strings, anything else as its str()."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """A JSON round trip, so metadata reads back from BentoML's YAML exactly as it was saved."""
    return json.loads(json.dumps(record, default=_jsonable))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_model(
    paths: LakePaths, domain: str, model_text: str, metadata: dict[str, Any], labels: dict[str, str] | None = None
) -> str:
    """Save a LightGBM model (text format) with its metadata; return its tag, <domain>_model:<version>."""
    import bentoml

    data = model_text.encode("utf-8")
    full_metadata = {
        "code_version": code_version(),
        "library_versions": library_versions(),
        **_plain(metadata),
        "model_sha256": _sha256(data),
        "model_file": MODEL_FILE,
    }
    summary = _summary(full_metadata)
    full_labels = {"stage": "candidate", **{k: str(v) for k, v in (labels or {}).items()}, "domain": domain}
    # bentoml.lightgbm would also work, but names the file saved_model.ubj and may pickle custom
    # objects; a plain text file we hash ourselves is readable, diffable and loads in any LightGBM.
    with bentoml.models.create(
        name=f"{domain}_model", labels=full_labels, metadata=summary, _model_store=_store(paths)
    ) as model:
        Path(model.path_of(MODEL_FILE)).write_bytes(data)
        Path(model.path_of(METADATA_FILE)).write_text(json.dumps(full_metadata, indent=1, sort_keys=True))
    return str(model.tag)


def _summary(meta: dict[str, Any]) -> dict[str, Any]:
    """The few non-null, flat fields listings need, in BentoML's own metadata."""
    threshold = meta.get("threshold")
    fields = {
        "model_sha256": meta["model_sha256"],
        "model_file": MODEL_FILE,
        "test_roc_auc": _test_roc_auc(meta),
        "threshold": threshold.get("threshold") if isinstance(threshold, dict) else threshold,
        "feature_service": meta.get("feature_service"),
        "code_version": meta.get("code_version"),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _full_metadata(model: Any) -> dict[str, Any]:
    """The full metadata record saved beside the model (older models: BentoML's metadata)."""
    path = Path(model.path_of(METADATA_FILE))
    return json.loads(path.read_text()) if path.exists() else dict(model.info.metadata)


def _all_models(paths: LakePaths) -> list[Any]:
    import bentoml

    return bentoml.models.list(_model_store=_store(paths))


def _get_model(paths: LakePaths, tag_or_version: str) -> Any:
    """The stored model with this tag (name:version) or version, a unique prefix of either being enough."""
    import bentoml
    from bentoml.exceptions import BentoMLException

    if ":" in tag_or_version:
        try:
            return bentoml.models.get(tag_or_version, _model_store=_store(paths))
        except BentoMLException as e:  # NotFound, or an ambiguous version prefix
            raise RegistryError(f"no model {tag_or_version!r} in the registry: {e}") from None
    matches = [m for m in _all_models(paths) if m.tag.version.startswith(tag_or_version.lower())]
    if not matches:
        raise RegistryError(f"no model with version {tag_or_version!r} in {bentoml_home(paths) / 'models'}")
    if len(matches) > 1:
        raise RegistryError(f"version {tag_or_version!r} is ambiguous: {', '.join(str(m.tag) for m in matches)}")
    return matches[0]


def _domain_of(model: Any) -> str:
    return model.info.labels.get("domain") or model.tag.name.removesuffix("_model")


def load_model_text(paths: LakePaths, tag_or_version: str) -> tuple[str, dict[str, Any]]:
    """The model's LightGBM text and metadata, after checking the file against its recorded SHA-256."""
    return read_model(_get_model(paths, tag_or_version))


def load_domain_model(paths: LakePaths, domain: str, tag_or_version: str) -> tuple[str, str, dict[str, Any]]:
    """A domain's stored model by tag or version (a unique prefix will do): its tag, SHA-checked text and metadata."""
    model = _get_model(paths, tag_or_version)
    if _domain_of(model) != domain:
        raise RegistryError(f"{model.tag} is a model of {_domain_of(model)!r}, not of {domain!r}")
    return (str(model.tag), *read_model(model))


def model_metadata(paths: LakePaths, tag_or_version: str) -> dict[str, Any]:
    """A stored model's full metadata record (no SHA check: the model file is not read)."""
    return _full_metadata(_get_model(paths, tag_or_version))


def read_model(model: Any) -> tuple[str, dict[str, Any]]:
    """load_model_text for a BentoML stored model already in hand (e.g. the one packaged in a bento)."""
    data = Path(model.path_of(MODEL_FILE)).read_bytes()
    meta = _full_metadata(model)
    recorded, actual = meta.get("model_sha256"), _sha256(data)
    if recorded != actual:
        raise ModelIntegrityError(
            f"{model.tag}: {MODEL_FILE} has SHA-256 {actual}, but {recorded} was recorded "
            f"when it was saved; the file was modified or corrupted, do not serve it"
        )
    return data.decode("utf-8"), meta


def _test_roc_auc(meta: dict[str, Any]) -> float | None:
    """Test ROC AUC from metrics as either {"test_roc_auc": x} or {"test": {"roc_auc": x}}."""
    metrics = meta.get("metrics") or {}
    nested = metrics.get("test")
    return metrics.get("test_roc_auc", nested.get("roc_auc") if isinstance(nested, dict) else None)


def _describe(model: Any, champions: dict[str, str | None], past: dict[str, set[str]]) -> dict[str, Any]:
    """One model as a flat dict for listings."""
    meta, labels, domain, tag = model.info.metadata, model.info.labels, _domain_of(model), str(model.tag)
    is_champion = champions.get(domain) == tag
    # A model's stage label is written once at save time; promotion happens in the champion file.
    status = "champion" if is_champion else "retired" if tag in past.get(domain, ()) else labels.get("stage", "")
    return {
        "tag": tag,
        "version": model.tag.version,
        "domain": domain,
        "dataset": domain,  # the name user datasets go by; built-in demos too
        "created": model.creation_time.isoformat(timespec="seconds"),
        "champion": is_champion,
        "status": status,
        "stage": labels.get("stage"),
        "test_roc_auc": meta.get("test_roc_auc", _test_roc_auc(meta)),
        "threshold": meta.get("threshold"),
        "feature_service": meta.get("feature_service"),
        "code_version": meta.get("code_version"),
        "model_sha256": meta.get("model_sha256"),
        "path": model.path,
    }


def list_models(paths: LakePaths, domain: str | None = None) -> list[dict[str, Any]]:
    """Stored models, newest first, each with its metadata summary and whether it is its domain's champion."""
    models = [m for m in _all_models(paths) if domain is None or _domain_of(m) == domain]
    domains = {_domain_of(m) for m in models}
    champions = {d: champion(paths, d) for d in domains}
    past = {d: {e["tag"] for e in champion_history(paths, d)} for d in domains}
    models.sort(key=lambda m: m.creation_time, reverse=True)
    return [_describe(m, champions, past) for m in models]


def show_model(paths: LakePaths, tag_or_version: str) -> dict[str, Any]:
    """One model's summary plus its full labels and metadata."""
    model = _get_model(paths, tag_or_version)
    domain = _domain_of(model)
    history = champion_history(paths, domain)
    described = _describe(model, {domain: champion(paths, domain)}, {domain: {e["tag"] for e in history}})
    return {
        **described,
        "labels": dict(model.info.labels),
        "metadata": _full_metadata(model),
        "champion_history": [e for e in history if e["tag"] == described["tag"]],
    }


def _registry_file(paths: LakePaths, domain: str) -> Path:
    return paths.champion_pointer(domain)


def champion_history(paths: LakePaths, domain: str) -> list[dict[str, Any]]:
    """Every champion change of the domain, oldest first: tag, action (promote/rollback/manual), reason, at."""
    path = _registry_file(paths, domain)
    return json.loads(path.read_text())["history"] if path.exists() else []


def _lineage(history: list[dict[str, Any]]) -> list[str]:
    """The champions still to roll back through: promotions push a tag, rollbacks pop the current one."""
    stack: list[str] = []
    for event in history:
        if event["action"] == "rollback":
            stack.pop()
        else:
            stack.append(event["tag"])
    return stack


def champion(paths: LakePaths, domain: str) -> str | None:
    """The tag of the domain's champion model, or None before the first promotion."""
    path = _registry_file(paths, domain)
    return json.loads(path.read_text())["champion"] if path.exists() else None


def _write_history(paths: LakePaths, domain: str, history: list[dict[str, Any]]) -> None:
    champion_tag = history[-1]["tag"] if history else None
    write_json_atomic({"domain": domain, "champion": champion_tag, "history": history}, _registry_file(paths, domain))


def promote(paths: LakePaths, domain: str, tag: str, reason: str, action: str = "promote") -> str:
    """Make a stored model of the domain its champion; return its full tag. Unknown models are refused."""
    if action not in ACTIONS:
        raise RegistryError(f"unknown action {action!r}; expected one of {ACTIONS}")
    model = _get_model(paths, tag)
    full_tag = str(model.tag)
    if _domain_of(model) != domain:
        raise RegistryError(f"{full_tag} belongs to domain {_domain_of(model)!r}, not {domain!r}")
    history = champion_history(paths, domain)
    if action != "rollback" and _lineage(history)[-1:] == [full_tag]:
        raise RegistryError(f"{full_tag} is already the {domain} champion")
    event = {
        "tag": full_tag,
        "action": action,
        "reason": reason,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_history(paths, domain, [*history, event])
    return full_tag


def rollback(paths: LakePaths, domain: str, reason: str) -> str:
    """Make the champion before the current one champion again; return its tag."""
    lineage = _lineage(champion_history(paths, domain))
    if len(lineage) < 2:
        current = lineage[-1] if lineage else "none"
        raise RegistryError(f"nothing to roll back to for {domain}: current champion {current}, no earlier one")
    return promote(paths, domain, lineage[-2], reason, action="rollback")


def registered_domains(paths: LakePaths) -> list[str]:
    """Domains that have a champion file."""
    folder = paths.registry
    return sorted(p.stem for p in folder.glob("[!.]*.json")) if folder.exists() else []


def experiments_dir(paths: LakePaths) -> Path:
    return paths.experiments


def _json_text(value: Any) -> str | None:
    """Dicts as sorted JSON text; strings (already JSON) and None as they are."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=_jsonable, sort_keys=True)


def record_training_run(paths: LakePaths, record: dict[str, Any]) -> Path:
    """Append one training run (run_id, domain, model_tag, params, metrics, data_versions, decision, reasons, at)."""
    at = record.get("at") or datetime.now(timezone.utc)
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    run_id = record.get("run_id") or uuid.uuid4().hex
    reasons = record.get("reasons") or []
    row = {
        "run_id": run_id,
        "domain": record["domain"],
        "model_tag": record.get("model_tag"),
        "params": _json_text(record.get("params")),
        "metrics": _json_text(record.get("metrics")),
        "data_versions": _json_text(record.get("data_versions")),
        "decision": record.get("decision"),
        "reasons": [reasons] if isinstance(reasons, str) else [str(r) for r in reasons],
        "at": at,
    }
    # One small file per run: concurrent runs never rewrite each other's rows, and names sort by time.
    path = experiments_dir(paths) / f"{at.astimezone(timezone.utc):%Y%m%dT%H%M%S%f}_{run_id}.parquet"
    return write_parquet_atomic(pl.DataFrame([row], schema=RUN_SCHEMA), path)


def training_runs(paths: LakePaths, domain: str | None = None) -> pl.DataFrame:
    """Training runs, oldest first; params, metrics and data_versions are JSON text.

    From DuckDB: SELECT * FROM read_parquet('<data root>/lake/experiments/*.parquet') ORDER BY at
    (in-progress temporary files start with a dot and end in .tmp, so the glob never sees them).
    """
    folder = experiments_dir(paths)
    files = sorted(folder.glob("[!.]*.parquet")) if folder.exists() else []
    runs = pl.read_parquet(files) if files else pl.DataFrame(schema=RUN_SCHEMA)
    if domain is not None:
        runs = runs.filter(pl.col("domain") == domain)
    return runs.sort("at")
