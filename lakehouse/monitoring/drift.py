"""Data drift with Evidently: per-feature effect sizes, weighted by the champion's importance.

Plain functions over polars frames; no Dagster or BentoML import. Evidently (about 6 s to import) is
imported inside drift_report only. Every result is a JSON-friendly dict (or a dataclass with to_dict),
so it can go straight into Dagster metadata.

Drift is measured with effect sizes, not p-values: at 50,000 rows every statistical test rejects
"same distribution" for shifts far too small to matter, while a distance stays near zero for
sampling noise and grows with the size of the shift.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from lakehouse.declarations.domain import Domain, DriftConfig
from lakehouse.lake.feature_tables import recent_features
from lakehouse.ml import model_registry
from lakehouse.ml.training import from_iso
from lakehouse.monitoring.drift_calibration import calibrate
from lakehouse.monitoring.results import monitoring_dir, save_latest
from lakehouse.monitoring.served import served_features
from lakehouse.paths import LakePaths
from lakehouse.serving.prediction_log import prediction_log_table


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
    calibration: dict[str, Any] | None = None  # how thresholds were set from the reference (drift_calibration)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CHUNK_TIME = "_drift_time"  # the column calibration chunks the reference by


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
    times: tuple[pl.Series, pl.Series] | None = None,
    history: pl.DataFrame | None = None,
) -> DriftResult:
    """Measure per-feature drift with Evidently, weight it by importance, and save the HTML report.

    With `times` (each reference and current row's time) and `config.calibrate`, thresholds and the
    share limit come from the reference's own time chunks (drift_calibration); else they are fixed.
    `history` (the features and a CHUNK_TIME column, e.g. the whole training set) spans more time for
    measuring the data's pace of change than the reference does.
    """
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
    max_share, calibration = config.max_weighted_drift_share, None
    if times is not None and config.calibrate:
        calibration = calibrate(
            reference.with_columns(times[0].alias(CHUNK_TIME)),
            times[1],
            current.height,
            kinds,
            weights,
            config,
            timestamp=CHUNK_TIME,
            history=history,
        )
        if calibration is not None:
            thresholds.update(calibration.thresholds)
            max_share = calibration.max_weighted_drift_share
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
    # Beyond calibrated thresholds (noise and the usual pace are in them) a large move is a real change
    # in the world, even in a feature the champion barely uses: a price rise before its churn shows.
    far = {
        f: m["score"] / m["threshold"]
        for f, m in measured.items()
        if calibration and m["threshold"] > 0 and m["score"] >= config.severe_drift_ratio * m["threshold"]
    }
    passed = weighted <= max_share and not far
    reason = (
        f"{len(drifted)} of {len(measured)} features drifted ({', '.join(drifted) or 'none'}), carrying "
        f"{weighted:.1%} of the checked importance; the limit is {max_share:.1%}"
    )
    if far:
        reason += "; far beyond their thresholds: " + ", ".join(f"{f} ({r:.1f}x)" for f, r in far.items())
    if times is not None and config.calibrate:
        reason += (
            f"; thresholds from {calibration.chunks} time chunks of the reference"
            if calibration
            else f"; fixed thresholds (the reference has fewer than 3 time chunks of {config.min_rows} rows)"
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
        max_share,
        checked_weight,
        rows,
        str(path) if path else None,
        calibration.to_dict() if calibration else None,
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
    first, last = from_iso(windows[0].split("..", 1)[0]), from_iso(windows[-1].split("..", 1)[1])
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


# The reference is the newest data the champion was fitted and judged on (its validation and hold-out
# windows): features with a trend (tenure, 90-day counts that fill up) would make older rows drift by design.
REFERENCE_WINDOWS = ("valid", "test")


MAX_MONITORING_ROWS = 50_000  # per frame: bounds Evidently's time on a large lake (sampled, seeded)


def domain_drift(
    paths: LakePaths,
    domain: Domain,
    champion_tag: str,
    until: datetime | None = None,
    config: DriftConfig | None = None,
) -> DriftResult:
    """The champion's newest training-set rows vs the newest feature days plus the features served in them.

    `until` replays the check for the window ending then (no served rows, nothing saved); `config`
    overrides the domain's drift config (to compare fixed with calibrated thresholds on one window).
    """
    meta = model_registry.model_metadata(paths, champion_tag)
    features, categorical = list(meta["features"]), list(meta["categories"])
    reference_rows = champion_reference(
        paths.training_set(domain.name), meta, max_rows=MAX_MONITORING_ROWS, parts=REFERENCE_WINDOWS
    )
    reference = reference_rows.select(features)
    # The whole training set, for the data's own pace of change (it spans more days than the reference).
    history = champion_reference(
        paths.training_set(domain.name), meta, max_rows=MAX_MONITORING_ROWS, parts=("train", "valid", "test")
    )
    recent = recent_features(paths, domain, days=domain.drift_window_days, max_rows=MAX_MONITORING_ROWS, until=until)
    current = recent.select(features)
    log_table = prediction_log_table(paths, domain.name)
    if log_table.exists() and recent.height and until is None:
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
        config or domain.drift,
        report_dir=monitoring_dir(paths, domain) / "reports" if until is None else None,
        report_name=f"drift_{stamp}",
        times=(reference_rows["event_timestamp"], recent["event_timestamp"]),
        history=history.select(*features, pl.col("event_timestamp").alias(CHUNK_TIME)),
    )
    if until is None:
        save_latest(paths, domain, "drift", {"champion": champion_tag, **result.to_dict()})
    return result
