"""Monitoring computations: data drift (Evidently), live performance with delayed labels, training/serving skew.

Plain functions over polars frames; no Dagster or BentoML import. Evidently (about 6 s to import) is
imported inside drift_report only. Every result is a JSON-friendly dict (or a dataclass with to_dict),
so it can go straight into Dagster metadata.

Drift is measured with effect sizes, not p-values: at 50,000 rows every statistical test rejects
"same distribution" for shifts far too small to matter, while a distance stays near zero for
sampling noise and grows with the size of the shift.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl

from lakehouse.declarations.domain import Domain, DriftConfig
from lakehouse.paths import LakePaths

MIN_PERFORMANCE_ROWS = 100  # fewer labelled rows per window give an AUC too noisy to act on

SKEW_REL_TOL = 1e-6  # served float32/JSON round trips differ from the offline float64 in the 7th digit
SKEW_ABS_TOL = 1e-9
MAX_SKEW_SHARE = 0.01  # share of sampled rows per feature allowed to differ (late materialization, say)


# --------------------------------------------------------------------------------------------- drift


@dataclass
class DriftResult:
    """Per-feature drift, the drifted shares (plain and importance-weighted) and the verdict."""

    status: str  # "passed", "failed" or "skipped"
    passed: bool | None  # None when skipped
    reason: str
    features: dict[str, dict[str, Any]]  # checked features: kind, method, score, threshold, drifted, weight, ...
    skipped: dict[str, str]  # feature -> why it was not checked
    drifted: list[str]
    drifted_share: float | None  # drifted / checked features
    weighted_drifted_share: float | None  # importance of drifted / importance of checked features
    max_weighted_drift_share: float
    checked_weight: float  # share of the total importance that was checked (1.0 when nothing was skipped)
    rows: dict[str, int]  # reference, current
    report_path: str | None  # Evidently HTML report, when one was made

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _null_count(s: pl.Series) -> int:
    """Nulls plus float NaNs: Evidently drops both before measuring."""
    return s.null_count() + (int(s.is_nan().sum()) if s.dtype.is_float() else 0)


def _kind(name: str, dtype: pl.DataType, categorical: Sequence[str]) -> str | None:
    if dtype == pl.Null:  # an all-null column read without a type: measured as its declared kind
        return "categorical" if name in categorical else "numeric"
    if name in categorical or dtype in (pl.String, pl.Categorical, pl.Boolean) or isinstance(dtype, pl.Enum):
        return "categorical"
    if dtype.is_numeric():
        return "numeric"
    return None


def feature_weights(features: Sequence[str], importance: Mapping[str, float] | None) -> dict[str, float]:
    """Each feature's share of the total importance (equal shares when there is no importance)."""
    raw = {f: max(float((importance or {}).get(f) or 0.0), 0.0) for f in features}
    total = sum(raw.values())
    if not importance or total <= 0:
        return {f: 1.0 / len(features) for f in features} if features else {}
    return {f: w / total for f, w in raw.items()}


def _prepare(
    reference: pl.DataFrame, current: pl.DataFrame, features: Sequence[str], categorical: Sequence[str], min_values: int
) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, float]]]:
    """Which features can be measured (feature -> kind), which cannot (feature -> reason), and null shares."""
    kinds, skipped, nulls = {}, {}, {}
    for f in features:
        if f not in reference.columns:
            skipped[f] = "missing from the reference data"
            continue
        if f not in current.columns:
            skipped[f] = "missing from the current data"
            continue
        kind = _kind(f, reference[f].dtype, categorical)
        if kind is None:
            skipped[f] = f"unsupported dtype {reference[f].dtype}"
            continue
        ref, cur = _typed(reference[f], kind), _typed(current[f], kind)
        ref_nulls, cur_nulls = _null_count(ref), _null_count(cur)
        nulls[f] = {
            "reference_null_share": ref_nulls / max(ref.len(), 1),
            "current_null_share": cur_nulls / max(cur.len(), 1),
        }
        for name, s, n in (("reference", ref, ref_nulls), ("current", cur, cur_nulls)):
            if n == s.len():
                skipped[f] = f"all values are null in the {name} data"
                break
            if s.len() - n < min_values:
                skipped[f] = f"only {s.len() - n} non-null values in the {name} data (at least {min_values} needed)"
                break
        if f in skipped:
            continue
        # min == max on both sides is a cheaper "one distinct value" than hashing every value.
        ref_values, cur_values = _non_null(ref), _non_null(cur)
        if ref_values.min() == ref_values.max() == cur_values.min() == cur_values.max():
            value = _non_null(reference[f])[0]  # as the data has it, not as measured (1, not 1.0)
            skipped[f] = f"constant: every value is {value!r} in both reference and current data"
            continue
        kinds[f] = kind
    return kinds, skipped, nulls


def _typed(s: pl.Series, kind: str) -> pl.Series:
    # A numeric feature logged as text (or a category logged as a number) is compared on one type.
    return s.cast(pl.String, strict=False) if kind == "categorical" else s.cast(pl.Float64, strict=False)


def _non_null(s: pl.Series) -> pl.Series:
    return s.fill_nan(None).drop_nulls() if s.dtype.is_float() else s.drop_nulls()


def _pandas(frame: pl.DataFrame, kinds: Mapping[str, str]) -> Any:
    """The measurable columns as pandas: numerics float64 with NaN for null, categories as text."""
    return frame.select([_typed(frame[f], kind).alias(f) for f, kind in kinds.items()]).to_pandas()


def _save_html(snapshot: Any, report_dir: Path, name: str) -> Path:
    """Write the Evidently HTML report under a temporary name, then rename it into place."""
    report_dir.mkdir(parents=True, exist_ok=True)
    target = report_dir / f"{name}.html"
    tmp = report_dir / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        snapshot.save_html(str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def drift_report(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    importance: Mapping[str, float] | None = None,
    config: DriftConfig = DriftConfig(),
    report_dir: Path | None = None,
    report_name: str = "drift_report",
) -> DriftResult:
    """Measure per-feature drift with Evidently, weight it by importance, and save the HTML report."""
    features = list(dict.fromkeys(features))
    rows = {"reference": reference.height, "current": current.height}
    weights = feature_weights(features, importance)

    def skipped_result(reason: str, skipped: dict[str, str]) -> DriftResult:
        return DriftResult(
            "skipped", None, reason, {}, skipped, [], None, None, config.max_weighted_drift_share, 0.0, rows, None
        )

    if not features:
        return skipped_result("no features to compare", {})
    small = [f"{name} has {n} rows" for name, n in rows.items() if n < config.min_rows]
    if small:
        return skipped_result(
            f"{' and '.join(small)}; at least {config.min_rows} are needed for a drift estimate "
            f"that is not sampling noise",
            {f: "not enough rows" for f in features},
        )
    kinds, skipped, nulls = _prepare(reference, current, features, categorical, config.min_rows)
    if not kinds:
        return skipped_result(
            "no feature could be measured: " + "; ".join(f"{f}: {r}" for f, r in skipped.items()), skipped
        )

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    columns = list(kinds)
    methods = {f: config.method(f, kinds[f]) for f in columns}
    thresholds = {f: config.threshold(f, kinds[f]) for f in columns}
    definition = DataDefinition(
        numerical_columns=[f for f in columns if kinds[f] == "numeric"],
        categorical_columns=[f for f in columns if kinds[f] == "categorical"],
    )
    # Explicit methods and thresholds: Evidently's automatic choice switches to p-value tests at 1,000
    # rows or fewer. One ValueDrift per column rather than DataDriftPreset: the preset measures every
    # column three times (ValueDrift, DriftedColumnsCount, its legacy table) and was 2-3x slower; the
    # shares it would add are computed here, weighted.
    report = Report(
        [ValueDrift(column=f, method=methods[f], threshold=thresholds[f]) for f in columns], include_tests=True
    )
    snapshot = report.run(
        current_data=Dataset.from_pandas(_pandas(current, kinds), data_definition=definition),
        reference_data=Dataset.from_pandas(_pandas(reference, kinds), data_definition=definition),
    )
    scores, verdicts = _evidently_results(snapshot.dict())

    measured: dict[str, dict[str, Any]] = {}
    for f in columns:
        score = scores.get(f)
        if score is None or not math.isfinite(score):
            skipped[f] = f"Evidently returned no finite drift score ({score!r})"
            continue
        # Evidently's test knows each method's direction (p-values drift when small, distances when large).
        is_drifted = verdicts.get(f, score >= thresholds[f])
        measured[f] = {
            "kind": kinds[f],
            "method": methods[f],
            "score": float(score),
            "threshold": thresholds[f],
            "drifted": bool(is_drifted),
            "weight": weights[f],
            **nulls[f],
        }
    if not measured:
        return skipped_result("Evidently measured no feature", skipped)

    drifted = [f for f, m in measured.items() if m["drifted"]]
    checked_weight = sum(weights[f] for f in measured)
    drifted_share = len(drifted) / len(measured)
    # With no importance on any checked feature, fall back to the plain share rather than divide by zero.
    weighted = sum(weights[f] for f in drifted) / checked_weight if checked_weight > 0 else drifted_share
    passed = weighted <= config.max_weighted_drift_share
    reason = (
        f"{len(drifted)} of {len(measured)} features drifted ({', '.join(drifted) or 'none'}), carrying "
        f"{weighted:.1%} of the checked importance; the limit is {config.max_weighted_drift_share:.1%}"
    )
    if skipped:
        reason += f"; {len(skipped)} feature(s) skipped ({checked_weight:.1%} of the importance checked)"
    path = _save_html(snapshot, Path(report_dir), report_name) if report_dir is not None else None
    return DriftResult(
        "passed" if passed else "failed",
        passed,
        reason,
        measured,
        skipped,
        drifted,
        drifted_share,
        weighted,
        config.max_weighted_drift_share,
        checked_weight,
        rows,
        str(path) if path else None,
    )


def _evidently_results(snapshot: dict[str, Any]) -> tuple[dict[str, float], dict[str, bool]]:
    """Per-column drift scores and drift verdicts from an Evidently 0.7 snapshot dict."""
    scores, by_id = {}, {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            scores[config["column"]] = metric["value"]
            by_id[metric["id"]] = config["column"]
    verdicts = {}
    for test in snapshot.get("tests", []):
        column = by_id.get(test.get("metric_config", {}).get("metric_id"))
        if column is not None:
            verdicts[column] = test["status"] == "FAIL"
    return scores, verdicts


def _as_of(value: str) -> datetime:
    """An ISO date (midnight) or timestamp from a split boundary."""
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time())
    except ValueError:
        return datetime.fromisoformat(value)


def champion_reference(
    training_set: pl.DataFrame | Path,
    metadata: Mapping[str, Any],
    timestamp: str = "event_timestamp",
    max_rows: int | None = None,
    seed: int = 0,
    parts: Sequence[str] = ("train",),
) -> pl.DataFrame:
    """The champion's training-set rows from the first of `parts` to the last (split windows), optionally sampled."""
    split = metadata.get("split") or {}
    windows = [split.get(part) for part in parts]
    if not all(w and ".." in w for w in windows):
        raise ValueError(
            f"model metadata lacks the windows {list(parts)} in split (got {split!r}); "
            f"expected 'first..last' as-of times, as models.train_candidate records"
        )
    first, last = _as_of(windows[0].split("..", 1)[0]), _as_of(windows[-1].split("..", 1)[1])
    frame = pl.scan_parquet(training_set) if isinstance(training_set, (str, Path)) else training_set.lazy()
    dtype = frame.collect_schema().get(timestamp)
    if dtype is None:
        raise ValueError(f"training set has no {timestamp!r} column")
    tz = getattr(dtype, "time_zone", None)
    bounds = [pl.lit(t).dt.replace_time_zone(tz) if tz else pl.lit(t) for t in (first, last)]
    rows = frame.filter(pl.col(timestamp).is_between(bounds[0], bounds[1])).collect()
    if max_rows is not None and rows.height > max_rows:
        rows = rows.sample(n=max_rows, seed=seed).sort(timestamp, maintain_order=True)
    return rows


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _column(values: list[Any], dtype: pl.DataType) -> pl.Series:
    """JSON values as a column of the reference dtype (integers only when every value is whole)."""
    if dtype.is_numeric():
        numbers = pl.Series(values=[_number(v) for v in values], dtype=pl.Float64)
        if dtype.is_integer():
            whole = numbers.drop_nulls()
            if whole.is_empty() or bool(((whole % 1) == 0).all() & whole.is_finite().all()):
                return numbers.cast(dtype, strict=False)
        return numbers
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        return pl.Series(values=[None if v is None else str(v) for v in values], dtype=pl.String)
    if dtype == pl.Boolean:
        return pl.Series(values=[v if isinstance(v, bool) else None for v in values], dtype=pl.Boolean)
    return pl.Series(values=values, strict=False).cast(dtype, strict=False)


def served_features(log: pl.DataFrame, schema: Mapping[str, pl.DataType], entity_key: str) -> pl.DataFrame:
    """The features served with each successful prediction, as typed columns matching `schema`.

    Rows with an error, no feature JSON or JSON that does not parse are dropped. Output columns: the
    entity key, logged_at and model_version (when the log has them), then every feature of `schema`.
    """
    keep = log.filter(pl.col("features").is_not_null())
    if "error" in keep.columns:
        keep = keep.filter(pl.col("error").is_null())
    parsed, rows = [], []
    for i, text in enumerate(keep["features"].to_list()):
        try:
            # Python's parser, not polars': the service's json.dumps writes NaN, which strict JSON lacks.
            value = json.loads(text)
        except (TypeError, ValueError):
            continue
        if isinstance(value, dict):
            parsed.append(value)
            rows.append(i)
    meta = [c for c in (entity_key, "logged_at", "model_version") if c in keep.columns]
    out = keep.select(meta)[rows] if rows else keep.select(meta).clear()
    columns = [_column([p.get(f) for p in parsed], dtype).alias(f) for f, dtype in schema.items()]
    return out.with_columns(columns) if columns else out


# --------------------------------------------------------------------------------------- performance


def _naive_utc(column: str) -> pl.Expr:
    """A datetime column as naive UTC microseconds (the lake's convention), whatever its zone."""
    return pl.col(column).dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(pl.Datetime("us"))


def _to_naive_utc(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return frame.with_columns(_naive_utc(column))
    return frame.with_columns(pl.col(column).cast(pl.Datetime("us")))


def label_predictions(
    predictions: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    entity_key: str,
    label: str,
    max_label_lag: timedelta,
) -> pl.DataFrame:
    """Each entity's last scored prediction per day and model version, with the label of that day's as-of.

    A prediction on day D was made with the features stamped D 00:00, which are exactly the features
    of a label event with as-of D; labels come weekly, so it takes the newest as-of date in
    [D - max_label_lag, D] (backward as-of join). `label` and `label_as_of` are null where none exists.
    """
    for name, frame, needed in (
        ("predictions", predictions, (entity_key, "logged_at", "model_version", "score", "decision")),
        ("labels", labels, (entity_key, "event_timestamp", label)),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} are missing columns {missing}")
    scored = predictions.filter(pl.col(entity_key).is_not_null() & pl.col("score").is_not_null())
    if "error" in scored.columns:
        scored = scored.filter(pl.col("error").is_null())
    scored = _to_naive_utc(scored, "logged_at").with_columns(
        day=pl.col("logged_at").dt.truncate("1d"), decision=pl.col("decision").cast(pl.Boolean)
    )
    # Repeated requests for one entity would count it many times; its last prediction of the day stands.
    scored = (
        scored.sort("logged_at")
        .group_by(entity_key, "day", "model_version", maintain_order=True)
        .last()
        .select(entity_key, "day", "logged_at", "model_version", "score", "decision")
    )
    events = (
        _to_naive_utc(labels, "event_timestamp")
        .select(
            pl.col(entity_key).cast(scored.schema[entity_key]),
            pl.col("event_timestamp").alias("label_as_of"),
            pl.col(label).cast(pl.Int64).alias("label"),
        )
        .drop_nulls("label")
        .unique([entity_key, "label_as_of"], keep="last")
    )
    joined = scored.sort("day").join_asof(
        events.sort("label_as_of"),
        left_on="day",
        right_on="label_as_of",
        by=entity_key,
        strategy="backward",
        tolerance=max_label_lag,
        check_sortedness=False,
    )  # sorted above; polars cannot verify per group
    return joined.sort("day", "model_version", entity_key)


def _metrics(y: Any, scores: Any, decisions: Any, min_rows: int) -> dict[str, Any]:
    """ROC AUC, precision, recall and F1 of the served decisions; None (with a reason) where undefined."""
    from lakehouse.ml.evaluation import classification_metrics

    n, positives = len(y), int(sum(y))
    out: dict[str, Any] = {
        "labelled": n,
        "positives": positives,
        "roc_auc": None,
        "precision": None,
        "recall": None,
        "f1": None,
    }
    if n == 0:
        return {**out, "status": "no_labels", "reason": "no prediction has a matured label"}
    if n < min_rows:
        return {**out, "status": "too_few_rows", "reason": f"{n} labelled predictions; at least {min_rows} needed"}
    ranking = classification_metrics(y, scores, 0.5)
    # The served decision, not a re-applied threshold: each model version had its own threshold.
    served = classification_metrics(y, decisions, 0.5)
    flagged = served["tp"] + served["fp"]
    out.update(
        roc_auc=ranking["roc_auc"],
        pr_auc=ranking["pr_auc"],
        brier=ranking["brier"],
        tp=served["tp"],
        fp=served["fp"],
        tn=served["tn"],
        fn=served["fn"],
        precision=served["precision"] if flagged else None,
        recall=served["recall"] if positives else None,
    )
    out["f1"] = served["f1"] if out["precision"] is not None and out["recall"] is not None else None
    if positives in (0, n):
        return {
            **out,
            "status": "single_class",
            "reason": f"every label is {int(positives == n)}: ROC AUC is undefined",
        }
    return {**out, "status": "ok", "reason": ""}


def live_performance(
    predictions: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    entity_key: str,
    label: str,
    horizon: timedelta,
    max_label_lag: timedelta,
    labels_known_until: datetime | None = None,
    min_rows: int = MIN_PERFORMANCE_ROWS,
) -> dict[str, Any]:
    """Live ROC AUC, precision, recall and F1 per day and model version, on windows whose labels matured.

    A day D is mature when D + horizon <= labels_known_until (the newest time the label source
    covers); by default that is the newest label as-of + horizon, since label events are only made
    for as-of dates whose horizon has passed. Immature days are listed with metrics None.
    Returns {"windows": [...], "by_version": [...], "labels_known_until", "horizon_days", "unlabelled"}.
    """
    joined = label_predictions(predictions, labels, entity_key=entity_key, label=label, max_label_lag=max_label_lag)
    if labels_known_until is None:
        newest = _to_naive_utc(labels, "event_timestamp")["event_timestamp"].max() if labels.height else None
        labels_known_until = newest + horizon if newest is not None else None
    elif labels_known_until.tzinfo is not None:
        labels_known_until = labels_known_until.astimezone(timezone.utc).replace(tzinfo=None)
    mature = (pl.col("day") + horizon <= labels_known_until) if labels_known_until is not None else pl.lit(False)
    joined = joined.with_columns(mature=mature)

    def summarize(group: pl.DataFrame) -> dict[str, Any]:
        done = group.filter(pl.col("label").is_not_null())
        return _metrics(
            done["label"].to_numpy(), done["score"].to_numpy(), done["decision"].cast(pl.Float64).to_numpy(), min_rows
        )

    windows = []
    for (day, version), group in joined.group_by("day", "model_version", maintain_order=True):
        record = {"day": day.date().isoformat(), "model_version": version, "predictions": group.height}
        if not group["mature"][0]:
            until = "no label data" if labels_known_until is None else labels_known_until.isoformat()
            windows.append(
                {
                    **record,
                    "labelled": 0,
                    "positives": 0,
                    "roc_auc": None,
                    "precision": None,
                    "recall": None,
                    "f1": None,
                    "status": "immature",
                    "reason": f"labels for {record['day']} mature {horizon.days} days later; "
                    f"label data reaches {until}",
                }
            )
        else:
            windows.append({**record, **summarize(group)})
    by_version = []
    matured = joined.filter(pl.col("mature"))
    for (version,), group in matured.group_by("model_version", maintain_order=True):
        by_version.append(
            {
                "model_version": version,
                "predictions": group.height,
                "first_day": group["day"].min().date().isoformat(),
                "last_day": group["day"].max().date().isoformat(),
                **summarize(group),
            }
        )
    return {
        "windows": windows,
        "by_version": sorted(by_version, key=lambda r: r["last_day"]),
        "labels_known_until": labels_known_until.isoformat() if labels_known_until is not None else None,
        "horizon_days": horizon.days,
        "max_label_lag_days": max_label_lag.days,
        "predictions": joined.height,
        "unlabelled": int(matured["label"].null_count()),
    }


def performance_check(
    live: Mapping[str, Any], champion_holdout_auc: float, margin: float, model_version: str | None = None
) -> dict[str, Any]:
    """Pass when the live ROC AUC of a model version is at least its hold-out AUC minus `margin`.

    `model_version` defaults to the version with the most labelled matured predictions. `passed` is
    None (with a reason) when there is no usable live AUC yet.
    """
    versions = live.get("by_version") or []
    if model_version is not None:
        versions = [v for v in versions if v["model_version"] == model_version]
    result = {
        "passed": None,
        "model_version": model_version,
        "live_auc": None,
        "holdout_auc": float(champion_holdout_auc),
        "margin": float(margin),
        "min_auc": float(champion_holdout_auc) - float(margin),
        "labelled": 0,
        "positives": 0,
    }
    if not versions:
        which = f"of {model_version} " if model_version else ""
        return {**result, "reason": f"no matured predictions {which}to judge yet"}
    chosen = max(versions, key=lambda v: v["labelled"])
    result.update(
        model_version=chosen["model_version"],
        live_auc=chosen["roc_auc"],
        labelled=chosen["labelled"],
        positives=chosen["positives"],
        precision=chosen["precision"],
        recall=chosen["recall"],
        f1=chosen["f1"],
    )
    if chosen["roc_auc"] is None:
        return {**result, "reason": f"no live ROC AUC for {chosen['model_version']}: {chosen['reason']}"}
    passed = chosen["roc_auc"] >= result["min_auc"]
    verb = "is at least" if passed else "is below"
    return {
        **result,
        "passed": passed,
        "reason": f"live ROC AUC {chosen['roc_auc']:.3f} on {chosen['labelled']} labelled predictions {verb} "
        f"hold-out {champion_holdout_auc:.3f} - margin {margin:.3f} = {result['min_auc']:.3f}",
    }


# -------------------------------------------------------------------------------------------- skew

Recompute = Callable[[pl.DataFrame], pl.DataFrame]


def feast_recompute(store: Any, domain: Domain) -> Recompute:
    """A recompute function over Feast's point-in-time join (get_historical_features of the feature service)."""
    from lakehouse.feature_store.feast_objects import historical_features

    def recompute(rows: pl.DataFrame) -> pl.DataFrame:
        entity_df = rows.select(domain.entity_key, "event_timestamp").to_pandas()
        return pl.from_pandas(historical_features(store, domain, entity_df))

    return recompute


def skew_check(
    served: pl.DataFrame,
    recompute: Recompute,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    *,
    entity_key: str,
    timestamp: str = "logged_at",
    sample_size: int | None = 1000,
    seed: int = 0,
    rel_tol: float = SKEW_REL_TOL,
    abs_tol: float = SKEW_ABS_TOL,
    max_mismatch_share: float = MAX_SKEW_SHARE,
    max_examples: int = 3,
) -> dict[str, Any]:
    """Compare served feature values with a point-in-time recompute at the same (entity, time); count mismatches.

    `recompute` gets a frame of (entity key, event_timestamp as UTC datetimes) and returns those
    columns plus the features (Feast's get_historical_features: see feast_recompute). Floats match
    within rel_tol/abs_tol, categories exactly; null equals null (NaN counts as null). Returns per
    feature {kind, mismatches, mismatch_share}, row counts, up to max_examples examples per feature,
    and passed (every feature's mismatch share <= max_mismatch_share; None when nothing was compared).
    """
    features = list(dict.fromkeys(features))
    missing = [c for c in (entity_key, timestamp, *features) if c not in served.columns]
    if missing:
        raise ValueError(f"served frame is missing columns {missing}")
    rows = served.filter(pl.col(entity_key).is_not_null() & pl.col(timestamp).is_not_null())
    rows = _to_naive_utc(rows, timestamp).unique([entity_key, timestamp], keep="last", maintain_order=True)
    if sample_size is not None and rows.height > sample_size:
        rows = rows.sample(n=sample_size, seed=seed)
    result: dict[str, Any] = {
        "sample_rows": rows.height,
        "compared_rows": 0,
        "not_recomputed": 0,
        "features": {},
        "mismatched_rows": 0,
        "examples": [],
        "max_mismatch_share": max_mismatch_share,
        "passed": None,
    }
    if rows.is_empty():
        return {**result, "reason": "no served rows with an entity key to recompute"}
    entity_rows = rows.select(entity_key, pl.col(timestamp).dt.replace_time_zone("UTC").alias("event_timestamp"))
    recomputed = recompute(entity_rows)
    absent = [c for c in (entity_key, "event_timestamp", *features) if c not in recomputed.columns]
    if absent:
        raise ValueError(f"recompute returned no columns {absent}")
    recomputed = (
        _to_naive_utc(recomputed, "event_timestamp")
        .select(
            pl.col(entity_key).cast(rows.schema[entity_key]),
            pl.col("event_timestamp").alias(timestamp),
            *[pl.col(f).alias(f"{f}__recomputed") for f in features],
        )
        .unique([entity_key, timestamp], keep="last")
    )
    pairs = rows.join(recomputed, on=[entity_key, timestamp], how="inner")
    result["compared_rows"] = pairs.height
    result["not_recomputed"] = rows.height - pairs.height
    if pairs.is_empty():
        return {**result, "reason": "the recompute returned none of the sampled rows"}

    equal = {f: _equal(pairs[f], pairs[f"{f}__recomputed"], f in categorical, rel_tol, abs_tol) for f in features}
    any_mismatch = pl.Series([False] * pairs.height)
    for f in features:
        mismatches = int((~equal[f]).sum())
        any_mismatch = any_mismatch | ~equal[f]
        result["features"][f] = {
            "kind": "categorical" if f in categorical else "numeric",
            "mismatches": mismatches,
            "mismatch_share": mismatches / pairs.height,
        }
        # A few per feature, so a feature with rare mismatches is not crowded out by a broken one.
        for i in (~equal[f]).arg_true().head(max_examples).to_list():
            result["examples"].append(
                {
                    entity_key: pairs[entity_key][i],
                    timestamp: str(pairs[timestamp][i]),
                    "feature": f,
                    "served": pairs[f][i],
                    "recomputed": pairs[f"{f}__recomputed"][i],
                }
            )
    result["mismatched_rows"] = int(any_mismatch.sum())
    worst = max(result["features"].items(), key=lambda kv: kv[1]["mismatch_share"], default=None)
    result["passed"] = worst is None or worst[1]["mismatch_share"] <= max_mismatch_share
    result["reason"] = (
        "no feature differs"
        if not result["mismatched_rows"]
        else f"{result['mismatched_rows']} of {pairs.height} rows differ; worst {worst[0]} "
        f"{worst[1]['mismatch_share']:.1%} (limit {max_mismatch_share:.1%})"
    )
    return result


def _equal(served: pl.Series, recomputed: pl.Series, categorical: bool, rel_tol: float, abs_tol: float) -> pl.Series:
    """Row-wise equality with nulls equal to nulls: exact for categories, within tolerance for numbers."""
    if categorical or not (served.dtype.is_numeric() and recomputed.dtype.is_numeric()):
        a, b = served.cast(pl.String, strict=False), recomputed.cast(pl.String, strict=False)
        return ((a == b) | (a.is_null() & b.is_null())).fill_null(False)
    a = served.cast(pl.Float64).fill_nan(None)
    b = recomputed.cast(pl.Float64).fill_nan(None)
    frame = pl.DataFrame({"a": a, "b": b})
    close = frame.select(
        (pl.col("a") == pl.col("b"))  # exact, including equal infinities
        | (
            (pl.col("a") - pl.col("b")).abs()
            <= pl.max_horizontal(rel_tol * pl.max_horizontal(pl.col("a").abs(), pl.col("b").abs()), pl.lit(abs_tol))
        )
        | (pl.col("a").is_null() & pl.col("b").is_null())
    ).to_series()
    return close.fill_null(False)


# ----------------------------------------------------------------------- a domain's monitoring, from the lake

# The reference is the newest data the champion was fitted and judged on (its validation and hold-out
# windows): features with a trend (tenure, 90-day counts that fill up) would make older rows drift by design.
REFERENCE_WINDOWS = ("valid", "test")
MAX_MONITORING_ROWS = 50_000  # per frame: bounds Evidently's time on a large lake (sampled, seeded)


def monitoring_dir(paths: LakePaths, domain: Domain) -> Path:
    """<data root>/monitoring/<domain>/: drift reports, retraining decisions."""
    return paths.monitoring(domain.name)


def save_latest(paths: LakePaths, domain: Domain, kind: str, record: Mapping[str, Any]) -> Path:
    """Keep a monitoring result as <monitoring dir>/<kind>_latest.json (for `lakehouse status`)."""
    from lakehouse.io import write_json_atomic

    stamped = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **record}
    return write_json_atomic(
        json.loads(json.dumps(stamped, default=str)), monitoring_dir(paths, domain) / f"{kind}_latest.json"
    )


def latest_result(paths: LakePaths, domain: Domain, kind: str) -> dict[str, Any] | None:
    """The newest saved monitoring result of a kind ("drift", "performance"), or None."""
    path = monitoring_dir(paths, domain) / f"{kind}_latest.json"
    return json.loads(path.read_text()) if path.exists() else None


def domain_drift(
    paths: LakePaths,
    domain: Domain,
    champion_tag: str,
) -> DriftResult:
    """The champion's newest training-set rows vs the newest feature days plus the features served in them."""
    from lakehouse.lake.feature_tables import recent_features
    from lakehouse.ml import model_registry
    from lakehouse.serving.prediction_log import prediction_log_table

    meta = model_registry.model_metadata(paths, champion_tag)
    features, categorical = list(meta["features"]), list(meta["categories"])
    reference = champion_reference(
        paths.training_set(domain.name), meta, max_rows=MAX_MONITORING_ROWS, parts=REFERENCE_WINDOWS
    ).select(features)
    recent = recent_features(paths, domain, days=domain.drift_window_days, max_rows=MAX_MONITORING_ROWS)
    current = recent.select(features)
    log_table = prediction_log_table(paths, domain.name)
    if log_table.exists() and recent.height:
        # Served rows of the same window (by the time of their features), each (entity, feature time) once
        # and at most a third of the sample: a load test must not outweigh what the population looks like.
        start = recent["event_timestamp"].min()
        log = (
            pl.read_parquet(log_table)
            .filter(pl.col("features_at").dt.replace_time_zone(None) >= start)
            .unique(["entity_id", "features_at"], keep="last")
        )
        served = served_features(
            log.rename({"entity_id": domain.entity_key}), reference.schema, domain.entity_key
        ).select(features)
        cap = max(current.height // 2, 1)
        if served.height > cap:
            served = served.sample(n=cap, seed=0)
        current = pl.concat([current, served], how="vertical_relaxed")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    result = drift_report(
        reference,
        current,
        features,
        categorical,
        meta.get("importance"),
        domain.drift,
        report_dir=monitoring_dir(paths, domain) / "reports",
        report_name=f"drift_{stamp}",
    )
    save_latest(paths, domain, "drift", {"champion": champion_tag, **result.to_dict()})
    return result


def score_history(paths: LakePaths, domain: Domain) -> pl.DataFrame:
    """Every day's batch scores as predictions (logged_at = the features' day), for live performance."""
    files = sorted(paths.score_history(domain.name).glob("*.parquet"))
    if not files:
        key_type = pl.Int64 if domain.entity_dtype == "int64" else pl.String
        return pl.DataFrame(
            schema={
                domain.entity_key: key_type,
                "logged_at": pl.Datetime("us"),
                "model_version": pl.String,
                "score": pl.Float64,
                "decision": pl.Boolean,
            }
        )
    frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
    return frame.rename({"event_timestamp": "logged_at"})


def domain_performance(paths: LakePaths, domain: Domain, champion_tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Live performance of the daily batch scores on matured labels, and the champion's check against its hold-out."""
    from lakehouse.ml import model_registry

    predictions = score_history(paths, domain)
    labels = (
        pl.read_parquet(paths.labels(domain.name))
        if paths.labels(domain.name).exists()
        else pl.DataFrame(
            schema={domain.entity_key: pl.Int64, "event_timestamp": pl.Datetime("us"), domain.label_name: pl.Int64}
        )
    )
    live = live_performance(
        predictions,
        labels,
        entity_key=domain.entity_key,
        label=domain.label_name,
        horizon=domain.label_horizon,
        max_label_lag=domain.label_lag,
    )
    holdout = model_registry.model_metadata(paths, champion_tag)["metrics"]["test"]["roc_auc"]
    check = performance_check(live, holdout, domain.performance_margin, model_version=champion_tag)
    save_latest(
        paths, domain, "performance", {"champion": champion_tag, "check": check, "by_version": live["by_version"]}
    )
    return live, check


def domain_skew(
    paths: LakePaths, domain: Domain, store: Any, champion_tag: str, sample_size: int = 1000
) -> dict[str, Any]:
    """Served online features (predict_ids log rows) vs Feast's point-in-time recompute at their event time."""
    from lakehouse.ml import model_registry
    from lakehouse.serving.prediction_log import prediction_log_table

    meta = model_registry.model_metadata(paths, champion_tag)
    features, categorical = list(meta["features"]), list(meta["categories"])
    log_table = prediction_log_table(paths, domain.name)
    if not log_table.exists():
        return {"passed": None, "reason": "no prediction log ingested yet", "sample_rows": 0}
    log = pl.read_parquet(log_table).filter((pl.col("endpoint") == "predict_ids") & pl.col("features_at").is_not_null())
    if log.is_empty():
        return {"passed": None, "reason": "no online-feature predictions logged yet", "sample_rows": 0}
    schema = {f: (pl.String() if f in categorical else pl.Float64()) for f in features}
    # Recompute at the time the online values were written, not at the request's wall-clock time.
    log = log.drop("logged_at").rename({"features_at": "logged_at", "entity_id": domain.entity_key})
    served = served_features(log, schema, domain.entity_key).with_columns(
        pl.col(domain.entity_key).cast(pl.Int64 if domain.entity_dtype == "int64" else pl.String)
    )
    return skew_check(
        served,
        feast_recompute(store, domain),
        features,
        categorical,
        entity_key=domain.entity_key,
        sample_size=sample_size,
    )
