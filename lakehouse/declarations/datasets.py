"""User datasets: one declarative YAML file per dataset, turned into a Domain the generic machinery runs.

A dataset is a timestamped table of events: an entity id, an event time, feature columns and a
binary label (inline, or in separate label files joined by a key). `lakehouse dataset add` infers
the file (lakehouse/lake/dataset_inference.py); users may write or edit it by hand. load_spec validates it
with clear errors; to_domain builds the Domain: one source (plus one for label files), a spine of
(entity, day), one feature view with the feature columns at the event time, and label events at
the same time, so Feast's point-in-time join gives each labelled event its own features.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from lakehouse.declarations.domain import (
    Column,
    Costs,
    Domain,
    DriftConfig,
    Feature,
    FeatureView,
    RetrainPolicy,
    Source,
)
from lakehouse.paths import REPO_ROOT

DATASETS_ENV = "LAKEHOUSE_DATASETS_DIR"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FEATURE_TYPES = ("int64", "float64", "string", "bool")
RESERVED = {"event_timestamp", "day", "created", "score", "decision", "model_version"}
MAX_SLICES = 3  # categorical features with few values become fairness slices
MAX_SLICE_VALUES = 12


class DatasetSpecError(ValueError):
    """A dataset file that cannot describe a dataset; the message names the problem and the file."""


def datasets_dir() -> Path:
    """Where dataset files live: $LAKEHOUSE_DATASETS_DIR, or datasets/ in the repository."""
    return Path(os.environ.get(DATASETS_ENV) or REPO_ROOT / "datasets").resolve()


@dataclass(frozen=True)
class FeatureSpec:
    """One feature column: its type and how it is written; min/max/categories, when given, are enforced."""

    name: str
    type: str  # int64, float64, string or bool
    nullable: bool = True
    unit: str = ""  # suffix in text files, e.g. "%" for "40%"
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()  # informational unless enforce_categories
    enforce_categories: bool = False
    observed: dict[str, Any] = field(default_factory=dict)  # what `dataset add` saw: never enforced


@dataclass(frozen=True)
class LabelsSpec:
    """Labels in separate files (landing/<name>/labels/), joined to events by a key column."""

    key: str
    label: str  # the label column in the label files
    # When each label became known (optional). Its delay after the event sets label_horizon_days, and among
    # corrections of a key the newest label time wins.
    time: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """Everything about one dataset that is not in its rows."""

    name: str
    entity: str
    timestamp: str
    label: str
    positive: str  # the label value that means the positive class, as written
    features: tuple[FeatureSpec, ...]
    entity_type: str = "int64"
    labels: LabelsSpec | None = None
    drop: tuple[str, ...] = ()
    costs: tuple[float, float] = (1.0, 5.0)  # false positive, false negative
    description: str = ""
    ttl_days: int = 365  # an entity's features older than this are stale at serving
    label_horizon_days: int = 0  # days after an event before its label is final
    grain: str = "event"  # each row one case, scored once ("snapshot": rows are an entity's periodic states)
    drift: dict[str, Any] = field(default_factory=dict)  # DriftConfig fields
    retraining: dict[str, Any] = field(default_factory=dict)  # RetrainPolicy fields
    files: tuple[str, ...] = ()  # where `dataset add` read the data from (informational)

    @property
    def label_column(self) -> str:
        return self.labels.label if self.labels else self.label

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML, in reading order."""
        raw = asdict(self)
        raw["features"] = {
            f.pop("name"): {
                k: (list(v) if isinstance(v, tuple) else v)
                for k, v in f.items()
                if v not in (None, "", (), {})
                and not (k == "nullable" and v is True)
                and not (k == "enforce_categories" and v is False)
            }
            for f in raw["features"]
        }
        raw["costs"] = {"false_positive": self.costs[0], "false_negative": self.costs[1]}
        raw["drop"], raw["files"] = list(self.drop), list(self.files)
        if self.labels:
            raw["labels"] = {k: v for k, v in raw["labels"].items() if v is not None}
        return {k: v for k, v in raw.items() if v not in (None, [], {}, "")}


def _fail(where: str, message: str) -> DatasetSpecError:
    return DatasetSpecError(f"{where}: {message}")


def spec_from_dict(raw: Any, where: str = "dataset file") -> DatasetSpec:
    """A DatasetSpec from parsed YAML, or DatasetSpecError naming every problem found."""
    if not isinstance(raw, dict):
        raise _fail(where, "expected a mapping of settings at the top level")
    known = set(DatasetSpec.__dataclass_fields__)
    problems = [f"unknown setting {k!r} (known: {', '.join(sorted(known))})" for k in raw if k not in known]
    for required in ("name", "entity", "timestamp", "label", "positive", "features"):
        if raw.get(required) in (None, "", {}):
            problems.append(f"missing {required!r}")
    if problems:
        raise _fail(where, "; ".join(problems))
    name = str(raw["name"])
    if not NAME.match(name):
        problems.append(f"name {name!r} must be lowercase letters, digits and '_' (starting with a letter, at most 40)")
    features_raw = raw["features"]
    if not isinstance(features_raw, dict):
        raise _fail(where, "features must map each feature column to its settings")
    features = []
    feature_fields = set(FeatureSpec.__dataclass_fields__) - {"name"}
    for fname, settings in features_raw.items():
        settings = settings or {}
        if not isinstance(settings, dict):
            problems.append(f"feature {fname!r}: expected settings like {{type: float64}}")
            continue
        unknown = set(settings) - feature_fields
        if unknown:
            problems.append(f"feature {fname!r}: unknown settings {sorted(unknown)}")
            continue
        if settings.get("type") not in FEATURE_TYPES:
            problems.append(
                f"feature {fname!r}: type must be one of {list(FEATURE_TYPES)}, got {settings.get('type')!r}"
            )
            continue
        features.append(
            FeatureSpec(name=str(fname), **{k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()})
        )
    labels = raw.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not {"key", "label"} <= set(labels) <= {"key", "label", "time"}:
            problems.append(
                "labels must give 'key' (the join column) and 'label' (the label column), "
                "and may give 'time' (when each label became known)"
            )
            labels = None
        else:
            time = labels.get("time")
            labels = LabelsSpec(
                key=str(labels["key"]), label=str(labels["label"]), time=None if time is None else str(time)
            )
    costs = raw.get("costs") or {"false_positive": 1.0, "false_negative": 5.0}
    try:
        costs = (float(costs["false_positive"]), float(costs["false_negative"]))
        if min(costs) < 0:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        problems.append("costs must give non-negative numbers false_positive and false_negative")
        costs = (1.0, 5.0)
    if raw.get("grain", "event") not in ("event", "snapshot"):
        problems.append(f"grain must be event (each row one case) or snapshot, got {raw.get('grain')!r}")
    if raw.get("entity_type", "int64") not in ("int64", "string"):
        problems.append(f"entity_type must be int64 or string, got {raw.get('entity_type')!r}")
    for section, fields in (
        ("drift", DriftConfig.__dataclass_fields__),
        ("retraining", RetrainPolicy.__dataclass_fields__),
    ):
        unknown = set(raw.get(section) or {}) - set(fields)
        if unknown:
            problems.append(f"{section}: unknown settings {sorted(unknown)} (known: {', '.join(sorted(fields))})")
    spec = None
    if not problems:
        spec = DatasetSpec(
            name=name,
            entity=str(raw["entity"]),
            timestamp=str(raw["timestamp"]),
            label=str(raw["label"]),
            positive=str(raw["positive"]),
            features=tuple(features),
            entity_type=str(raw.get("entity_type", "int64")),
            labels=labels,
            drop=tuple(str(c) for c in raw.get("drop") or ()),
            costs=costs,
            description=str(raw.get("description", "")),
            ttl_days=int(raw.get("ttl_days", 365)),
            label_horizon_days=int(raw.get("label_horizon_days", 0)),
            grain=str(raw.get("grain", "event")),
            drift=dict(raw.get("drift") or {}),
            retraining=dict(raw.get("retraining") or {}),
            files=tuple(str(f) for f in raw.get("files") or ()),
        )
        problems += _consistency_problems(spec)
    if problems:
        raise _fail(where, "; ".join(problems))
    return spec


def _consistency_problems(spec: DatasetSpec) -> list[str]:
    """Column-name problems that need no data: clashes, reserved names, features also dropped."""
    problems = []
    names = [spec.entity, spec.timestamp, spec.label_column, *(f.name for f in spec.features)]
    if spec.labels:
        names += [spec.labels.key, *([spec.labels.time] if spec.labels.time else [])]
    for n in names:
        if not COLUMN.match(n):
            problems.append(f"column {n!r}: use letters, digits and '_' (rename it in the file, or drop it)")
        if n.lower() in RESERVED:
            problems.append(f"column {n!r} is a name the lakehouse uses itself; rename it")
    features = [f.name for f in spec.features]
    roles = [("entity", spec.entity), ("timestamp", spec.timestamp), ("label", spec.label)]
    if spec.labels:
        roles.append(("labels key", spec.labels.key))
    for role, column in roles:
        if column in features:
            problems.append(f"{role} column {column!r} is also listed as a feature")
    for n, (role, column) in enumerate(roles):
        for other, same in roles[n + 1 :]:
            if column == same and {role, other} != {"entity", "labels key"}:  # a case may be its own entity
                problems.append(f"the {role} and the {other} are the same column {column!r}")
    for column in set(spec.drop) & set(features):
        problems.append(f"column {column!r} is both dropped and a feature")
    if len(set(features)) != len(features):
        problems.append("a feature is listed twice")
    if not features:
        problems.append("no features: list at least one feature column")
    return problems


def load_spec(path: Path) -> DatasetSpec:
    """Read and validate one dataset file."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise _fail(str(path), f"not valid YAML: {e}") from None
    spec = spec_from_dict(raw, str(path))
    if spec.name != Path(path).stem:
        raise _fail(str(path), f"name {spec.name!r} differs from the file name; call the file {spec.name}.yaml")
    return spec


def save_spec(spec: DatasetSpec, folder: Path | None = None) -> Path:
    """Write <folder>/<name>.yaml (folder: datasets_dir()) with a header saying how it is used."""
    folder = folder or datasets_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{spec.name}.yaml"
    header = (
        f"# Dataset {spec.name!r}, read by every lakehouse command and by `dagster dev`.\n"
        f"# Written by `lakehouse dataset add`; edit freely (see the README, 'Bring your own dataset').\n"
    )
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + yaml.safe_dump(spec.to_dict(), sort_keys=False, allow_unicode=True))
    os.replace(tmp, path)
    return path


def load_datasets(folder: Path | None = None) -> dict[str, DatasetSpec]:
    """Every dataset file in the folder, validated (a broken file is an error, not silently skipped)."""
    folder = folder or datasets_dir()
    return (
        {spec.name: spec for spec in (load_spec(p) for p in sorted(folder.glob("*.yaml")))} if folder.exists() else {}
    )


def _label_case(column: str, positive: str) -> str:
    """SQL: 1 where the label text is the positive value (numerically equal also counts: 1 = 1.0), else 0."""
    text = positive.replace("'", "''")
    numeric = f" OR TRY_CAST({column} AS DOUBLE) = TRY_CAST('{text}' AS DOUBLE)"
    return f"CAST(lower(trim({column})) = lower('{text}'){numeric} AS BIGINT)"


def to_domain(spec: DatasetSpec) -> Domain:
    """The Domain of a dataset: the same declaration a built-in demo writes by hand."""
    n, key, ts = spec.name, spec.entity, spec.timestamp
    feature_columns = [
        Column(
            f.name,
            f.type,
            nullable=f.nullable,
            ge=f.min,
            le=f.max,
            unit=f.unit,
            isin=f.categories if f.enforce_categories and f.categories else None,
        )
        for f in spec.features
    ]
    columns = [Column(key, spec.entity_type), Column(ts, "datetime", not_in_future=True), *feature_columns]
    # The labels' join key: its own column, or the entity itself when each case is its own entity.
    label_key_type = spec.entity_type if spec.labels and spec.labels.key == key else "string"
    if spec.labels:
        if spec.labels.key != key:
            columns.append(Column(spec.labels.key, "string"))
        unique_key: tuple[str, ...] = (spec.labels.key,)
    else:
        columns.append(Column(spec.label, "string", nullable=True, description="the label, as written"))
        unique_key = (key, ts)
    sources = [
        Source(
            n,
            f"{n} events: one row per {key} and {ts}",
            tuple(columns),
            unique_key,
            unique_key,
            ignored_columns=tuple(c for c in spec.drop if c not in {col.name for col in columns}),
            # Inline labels: production files do not know their outcome yet, so later files may lack it.
            optional_columns=() if spec.labels else (spec.label,),
        )
    ]
    label_sources = [n]
    if spec.labels:
        lk = spec.labels.key
        sources.append(
            Source(
                f"{n}_labels",
                f"{n} labels, joined to events by {lk}",
                (
                    Column(lk, label_key_type),  # type: ignore[arg-type]
                    Column(spec.labels.label, "string"),
                    *([Column(spec.labels.time, "datetime", nullable=True)] if spec.labels.time else []),
                ),
                (lk,),
                (lk,),
                version_column=spec.labels.time,  # a correction: the newest label time wins (ties: the latest file)
                landing=f"{n}/labels",
            )
        )
        label_sources.append(f"{n}_labels")
        label_from = f"{n} e JOIN {n}_labels l USING ({lk})"
        label_value = f"l.{spec.labels.label}"
    else:
        label_from, label_value = f"{n} e", f"e.{spec.label}"
    selects = ", ".join(f"CAST({f.name} AS BIGINT) AS {f.name}" if f.type == "bool" else f.name for f in spec.features)
    view = FeatureView(
        name=f"{n}_features",
        description=f"The feature columns of {n} at each event time.",
        sources=(n,),
        features=tuple(
            Feature(f.name, "int64" if f.type == "bool" else f.type, f"{f.name}{' (' + f.unit + ')' if f.unit else ''}")
            for f in spec.features
        ),
        sql=f"SELECT {key}, {ts} AS event_timestamp, {selects} FROM {n} "
        f"QUALIFY row_number() OVER (PARTITION BY {key}, {ts} ORDER BY {ts}) = 1",
        ttl=timedelta(days=spec.ttl_days),
    )
    label_sql = (
        f"SELECT e.{key}, e.{ts} AS event_timestamp, {_label_case(label_value, spec.positive)} AS {spec.label} "
        f"FROM {label_from} WHERE {label_value} IS NOT NULL "
        f"QUALIFY row_number() OVER (PARTITION BY e.{key}, e.{ts} ORDER BY e.{ts}) = 1"
    )
    slices = tuple(
        f.name
        for f in spec.features
        if f.type == "string" and 1 < len(f.categories or f.observed.get("categories", ())) <= MAX_SLICE_VALUES
    )[:MAX_SLICES]
    return Domain(
        name=n,
        prediction=f"Is {spec.label} = {spec.positive!r} for this {key} event?",
        decision=f"Act on {key}s whose score reaches the threshold chosen by expected value.",
        entity=f"{n}_{key}",
        entity_key=key,
        entity_description=spec.description or f"A {key} of dataset {n}.",
        sources=tuple(sources),
        spine_sources=(n,),
        spine_sql=f"SELECT DISTINCT {key}, CAST({ts} AS DATE) AS day FROM {n}",
        feature_views=(view,),
        label_sources=tuple(label_sources),
        label_sql=label_sql,
        label_name=spec.label,
        service_args={"dataset": spec.name},  # the generic dataset service serves the dataset it is told
        costs=Costs(false_positive=spec.costs[0], false_negative=spec.costs[1]),
        risk_category="limited",
        success_measure="Expected value per scored event above the no-model baseline.",
        slices=slices,
        retraining=RetrainPolicy(**spec.retraining),
        drift=DriftConfig(**spec.drift),
        entity_dtype=spec.entity_type,  # type: ignore[arg-type]
        label_horizon=timedelta(days=spec.label_horizon_days),
        grain=spec.grain,  # type: ignore[arg-type]
        tags={"dataset": n},
    )
