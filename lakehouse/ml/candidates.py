"""The model lifecycle of a domain: train a tuned candidate, gate it against the champion, write its card.

Plain functions over training.py, evaluation.py and model_registry.py; the Dagster assets only wire them.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from lakehouse.declarations.domain import Domain
from lakehouse.io import write_json_atomic, write_parquet_atomic
from lakehouse.lake.validation import published_batches
from lakehouse.paths import LakePaths


@dataclass(frozen=True)
class TrainingOptions:
    """Starting hyperparameters and how hard to search (a fixed trial count keeps tuning reproducible)."""

    params: dict[str, Any] = field(default_factory=dict)  # LgbParams fields; tuning starts from them
    tune: bool = True
    trials: int = 15
    timeout_seconds: float = 90.0
    warm_start: bool = False  # the search tries the champion's hyperparameters first
    seed: int = 42
    min_auc_gain: float = 0.0
    slice_tolerance: float = 0.03

    def fingerprint(self, training_set_sha256: str) -> str:
        """What identifies a training run: its rows and how it trains (the gate's settings do not count)."""
        how = {k: v for k, v in asdict(self).items() if k not in ("min_auc_gain", "slice_tolerance")}
        return hashlib.sha256(json.dumps([training_set_sha256, how], sort_keys=True, default=str).encode()).hexdigest()


def model_dir(paths: LakePaths, domain: Domain, version: str) -> Path:
    """Where a model version's evaluation artifacts (plots, card, decision) live."""
    return paths.models(domain.name) / version


def baseline_scores_file(paths: LakePaths, domain: Domain, version: str, training_set_sha256: str) -> Path:
    """The baselines' hold-out scores for a candidate, valid for the training set with this hash only."""
    return model_dir(paths, domain, version) / f"baseline_scores_{training_set_sha256[:16]}.parquet"


def latest_candidate(paths: LakePaths, domain: Domain) -> str | None:
    """The tag the last training run produced (what the gate and the model card work on)."""
    record = latest_training(paths, domain)
    return record["tag"] if record else None


def latest_training(paths: LakePaths, domain: Domain) -> dict[str, str] | None:
    """The last training run: {"tag", "trained_at" (ISO, UTC), "training_set_sha256", "training_rows"}, or None."""
    pointer = paths.models(domain.name) / "candidate.json"
    return json.loads(pointer.read_text()) if pointer.exists() else None


def schema_hash(domain: Domain) -> str:
    """A hash of the feature names and types: a model only serves data of the same shape."""
    spec = [(f.name, f.dtype) for v in domain.feature_views for f in v.features]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


def data_versions(paths: LakePaths, domain: Domain, training_sha: str) -> dict[str, Any]:
    """The exact inputs of a training run: every published batch (id, sha256) and the training set's hash."""
    batches = sorted((b["batch_id"], b["sha256"]) for b in published_batches(paths, [s.name for s in domain.sources]))
    return {"training_set_sha256": training_sha, "batches": [{"batch_id": b, "sha256": s} for b, s in batches]}


def _slices(frame: pl.DataFrame, domain: Domain) -> dict[str, np.ndarray]:
    return {s: frame[s].fill_null("<missing>").to_numpy() for s in domain.slices}


def train_candidate(
    paths: LakePaths,
    domain: Domain,
    options: TrainingOptions = TrainingOptions(),
    progress: Callable[[str], None] = lambda msg: None,
) -> dict[str, Any]:
    """Split, check, tune, train, evaluate against baselines, save to the registry; return the record.

    The last training run is not repeated on the same training set with the same options: its record
    comes back (same_training_set), since the same rows give the same model.
    """
    from lakehouse.ml import evaluation, model_registry, training

    started = time.perf_counter()
    training_sha = hashlib.sha256(paths.training_set(domain.name).read_bytes()).hexdigest()
    fingerprint = options.fingerprint(training_sha)
    last = latest_training(paths, domain)
    if last and last.get("fingerprint") == fingerprint:
        progress(f"the training set is the one {last['tag']} was trained on: not training again")
        meta = model_registry.model_metadata(paths, last["tag"])
        return {
            **meta,
            "tag": last["tag"],
            "plots": last.get("plots", {}),
            "reused_existing_version": True,
            "same_training_set": True,
        }
    frame = pl.read_parquet(paths.training_set(domain.name))
    features, categorical = training.feature_columns(domain), training.categorical_columns(domain)
    split = training.time_split(frame)
    training.check_training_data(split, features, domain.label_name)
    base = training.LgbParams(**{**options.params, "seed": options.seed})
    trials: list[dict] = []
    if options.tune:
        champion = model_registry.champion(paths, domain.name) if options.warm_start else None
        first = model_registry.model_metadata(paths, champion)["params"] if champion else None
        base, trials = training.tune(
            split,
            features,
            categorical,
            domain.label_name,
            base,
            trials=options.trials,
            timeout_seconds=options.timeout_seconds,
            progress=progress,
            first=first,
        )
    model = training.train_lightgbm(split, features, categorical, domain.label_name, base)
    baselines = training.train_baselines(split, features, categorical, domain.label_name)

    y_valid = split.valid[domain.label_name].to_numpy()
    y_test = split.test[domain.label_name].to_numpy()
    chosen = evaluation.choose_threshold(y_valid, model.predict(split.valid), domain.costs)
    threshold = chosen["threshold"]
    scores = model.predict(split.test)
    test = evaluation.classification_metrics(y_test, scores, threshold)
    test["expected_value"] = evaluation.expected_value(y_test, scores, threshold, domain.costs)
    test["expected_value_at_0_5"] = evaluation.expected_value(y_test, scores, 0.5, domain.costs)
    baseline_scores = {name: fn(split.test) for name, fn in baselines.items()}
    baseline_metrics = {
        name: evaluation.classification_metrics(y_test, baseline, threshold)
        for name, baseline in baseline_scores.items()
    }
    importance = training.feature_importance(model)
    record = {
        "domain": domain.name,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": {"train": split.train.height, "valid": split.valid.height, "test": split.test.height},
        "split": split.boundaries,
        "params": model.params,
        "best_iteration": model.best_iteration,
        "threshold": chosen,
        "metrics": {
            "test": test,
            "valid": evaluation.classification_metrics(y_valid, model.predict(split.valid), threshold),
        },
        "baselines": baseline_metrics,
        "slices": evaluation.slice_metrics(_slices(split.test, domain), y_test, scores, threshold),
        "calibration": evaluation.calibration_curve(y_test, scores),
        "importance": importance,
        "trials": trials,
        "features": features,
        "categories": model.categories,
        "feature_service": domain.feature_service,
        "schema_hash": schema_hash(domain),
        "data_versions": data_versions(paths, domain, training_sha),
        "code_version": model_registry.code_version(),
        "library_versions": model_registry.library_versions(),
        "training_seconds": round(time.perf_counter() - started, 2),
    }
    # Retraining on the same inputs reproduces the same file byte for byte: keep one version of it.
    same = [
        m["tag"]
        for m in sorted(model_registry.list_models(paths, domain.name), key=lambda m: not m["champion"])
        if m["model_sha256"] == model.sha256
    ]
    tag = (
        same[0]
        if same
        else model_registry.save_model(
            paths, domain.name, model.model_text, record, labels={"domain": domain.name, "stage": "candidate"}
        )
    )
    record["tag"] = tag
    record["reused_existing_version"] = bool(same)
    record["model_sha256"] = model.sha256
    plots = evaluation.evaluation_plots(
        model_dir(paths, domain, tag.split(":")[-1]), y_test, scores, importance, record["calibration"]
    )
    record["plots"] = {k: str(p) for k, p in plots.items()}
    # The gate compares on the same hold-out rows: it reads these instead of training the baselines again.
    write_parquet_atomic(
        pl.DataFrame(baseline_scores),
        baseline_scores_file(paths, domain, tag.split(":")[-1], record["data_versions"]["training_set_sha256"]),
    )
    pointer = {
        "tag": tag,
        "trained_at": record["trained_at"],
        "training_set_sha256": training_sha,
        "fingerprint": fingerprint,
        "training_rows": frame.height,
        "plots": record["plots"],
    }
    write_json_atomic(pointer, paths.models(domain.name) / "candidate.json")
    return record


def gate_candidate(paths: LakePaths, domain: Domain, tag: str, options: TrainingOptions = TrainingOptions()) -> dict:
    """Compare a candidate with the champion on the candidate's hold-out window; promote if it is proven better."""
    from lakehouse.ml import evaluation, model_registry, training

    text, meta = model_registry.load_model_text(paths, tag)
    candidate = training.load_trained_model(text, meta["features"], meta["categories"], meta["params"])
    data = paths.training_set(domain.name).read_bytes()
    split = training.time_split(pl.read_parquet(io.BytesIO(data)))
    y = split.test[domain.label_name].to_numpy()
    scores = candidate.predict(split.test)
    current = model_registry.champion(paths, domain.name)
    champion_scores = None
    if current is not None:
        champion_text, champion_meta = model_registry.load_model_text(paths, current)
        if champion_meta["model_sha256"] == meta["model_sha256"]:
            decision = {
                "promote": False,
                "same_as_champion": True,
                "comparison": {},
                "reasons": [f"{tag} is the champion's model file ({current}): nothing to decide"],
            }
            return _record_decision(paths, domain, tag, meta, decision, current)
        champion = training.load_trained_model(champion_text, champion_meta["features"], champion_meta["categories"])
        champion_scores = champion.predict(split.test)
    stored = baseline_scores_file(paths, domain, tag.split(":")[-1], hashlib.sha256(data).hexdigest())
    if stored.exists():  # the candidate step scored these very rows
        baseline_scores = {name: column.to_numpy() for name, column in pl.read_parquet(stored).to_dict().items()}
    else:  # a candidate from before these files, or a training set rebuilt since
        baselines = training.train_baselines(
            split, meta["features"], training.categorical_columns(domain), domain.label_name
        )
        baseline_scores = {name: fn(split.test) for name, fn in baselines.items()}
    gate = evaluation.promotion_gate(
        y,
        scores,
        champion_scores,
        baseline_scores,
        _slices(split.test, domain),
        meta["threshold"]["threshold"],
        min_auc_gain=options.min_auc_gain,
        slice_tolerance=options.slice_tolerance,
        seed=options.seed,
    )
    decision = {**asdict(gate), "same_as_champion": False}
    if gate.promote:
        model_registry.promote(paths, domain.name, tag, "; ".join(gate.reasons))
    return _record_decision(paths, domain, tag, meta, decision, current)


def _record_decision(
    paths: LakePaths, domain: Domain, tag: str, meta: dict, decision: dict, previous: str | None
) -> dict:
    """Keep the decision beside the model and as one row of the experiment history, either way."""
    from lakehouse.ml import model_registry

    decision = {
        **decision,
        "tag": tag,
        "previous_champion": previous,
        "champion": model_registry.champion(paths, domain.name),
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    decision_file = model_dir(paths, domain, tag.split(":")[-1]) / "decision.json"
    if not (decision.get("same_as_champion") and decision_file.exists()):  # keep the decision that promoted it
        write_json_atomic(decision, decision_file)
    model_registry.record_training_run(
        paths,
        {
            "run_id": tag,
            "domain": domain.name,
            "model_tag": tag,
            "params": meta["params"],
            "metrics": {
                "test": meta["metrics"]["test"],
                "baselines": {k: v["roc_auc"] for k, v in meta["baselines"].items()},
            },
            "data_versions": {
                "training_set_sha256": meta["data_versions"]["training_set_sha256"],
                "batches": len(meta["data_versions"]["batches"]),
            },
            "decision": "promoted" if decision["promote"] else "refused",
            "reasons": decision["reasons"],
        },
    )
    return decision


def model_card(paths: LakePaths, domain: Domain, tag: str) -> dict[str, Path]:
    """Write the model card of a version (Markdown and JSON) from its registry record and gate decision."""
    from lakehouse.ml import model_registry

    _, meta = model_registry.load_model_text(paths, tag)
    version = tag.split(":")[-1]
    folder = model_dir(paths, domain, version)
    decision_file = folder / "decision.json"
    decision = json.loads(decision_file.read_text()) if decision_file.exists() else None
    test = meta["metrics"]["test"]
    card = {
        "model": tag,
        "domain": domain.name,
        "intended_use": {
            "prediction": domain.prediction,
            "decision": domain.decision,
            "success_measure": domain.success_measure,
        },
        "risk_category": domain.risk_category,
        "training_data": {
            "rows": meta["rows"],
            "split": meta["split"],
            "training_set_sha256": meta["data_versions"]["training_set_sha256"],
            "batches": len(meta["data_versions"]["batches"]),
        },
        "feature_service": meta["feature_service"],
        "features": meta["features"],
        "metrics": test,
        "baselines": {k: v["roc_auc"] for k, v in meta["baselines"].items()},
        "threshold": meta["threshold"],
        "costs": asdict(domain.costs),
        "slices": meta["slices"],
        "promotion": decision,
        "model_sha256": meta.get("model_sha256"),
        "code_version": meta.get("code_version"),
        "limitations": [
            "Trained on a synthetic subscription business; re-validate before any real use.",
            f"Valid for data shaped like schema {meta['schema_hash']}; other features are refused at serving.",
            f"Evaluated on the hold-out window {meta['split'].get('test')}; performance may drift afterwards.",
            "Slices with few rows or a single class have no AUC; their metrics are not reliable.",
        ],
    }

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    baseline_rows = "\n".join(f"| {k} | {fmt(v)} |" for k, v in card["baselines"].items())
    slice_rows = "\n".join(
        f"| {s['slice']}={s['value']} | {s['rows']} | {s['positives']} | {fmt(s['roc_auc'])} | "
        f"{fmt(s['precision'])} | {fmt(s['recall'])} |"
        for s in meta["slices"]
    )
    promotion = (
        "not decided yet"
        if decision is None
        else f"**{'promoted' if decision['promote'] else 'not promoted'}**: " + "; ".join(decision["reasons"])
    )
    markdown = (
        f"""# Model card: {tag}

**Domain:** {domain.name} · **Risk category (EU AI Act):** {domain.risk_category}

## Intended use
{domain.prediction} It feeds one decision: {domain.decision} Success: {domain.success_measure}

## Training data
{meta["rows"]["train"]:,} train, {meta["rows"]["valid"]:,} validation and {meta["rows"]["test"]:,} hold-out rows
(as-of windows: {meta["split"]}), from {card["training_data"]["batches"]} ingested batches; training set
SHA-256 `{card["training_data"]["training_set_sha256"][:16]}…`. Features: feature service `{meta["feature_service"]}`
({len(meta["features"])} features).

## Hold-out metrics
| metric | value |
|---|---|
| ROC AUC | {fmt(test["roc_auc"])} |
| PR AUC | {fmt(test["pr_auc"])} |
| log loss | {fmt(test["log_loss"])} |
| Brier | {fmt(test["brier"])} |
| precision / recall / F1 | {fmt(test["precision"])} / {fmt(test["recall"])} / {fmt(test["f1"])} |
| threshold (max expected value on validation) | {fmt(meta["threshold"]["threshold"])} |
| expected value per {domain.entity} at the threshold | {fmt(test["expected_value"])} {domain.costs.currency} |
| expected value per {domain.entity} at 0.5 | {fmt(test["expected_value_at_0_5"])} {domain.costs.currency} |

Costs: a false positive (acting on a negative case) {domain.costs.false_positive} {domain.costs.currency}, a false
negative (a missed positive case) {domain.costs.false_negative} {domain.costs.currency}.

| baseline | ROC AUC |
|---|---|
{baseline_rows}

## Slices (hold-out)
| slice | rows | positives | ROC AUC | precision | recall |
|---|---|---|---|---|---|
{slice_rows}

## Promotion decision
{promotion}

## Limitations
"""
        + "\n".join(f"- {item}" for item in card["limitations"])
        + "\n"
    )
    md_path = folder / "model_card.md"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".model_card.md.tmp"
    tmp.write_text(markdown)
    tmp.replace(md_path)
    json_path = write_json_atomic(card, folder / "model_card.json")
    return {"markdown": md_path, "json": json_path}
