"""Live performance with delayed labels: each prediction joined to its label once it matured, metrics per day and model version."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import polars as pl

from lakehouse.declarations.domain import Domain
from lakehouse.lake.feature_tables import current_label_events
from lakehouse.ml import model_registry
from lakehouse.ml.evaluation import classification_metrics
from lakehouse.monitoring.results import save_latest
from lakehouse.monitoring.served import to_naive_utc
from lakehouse.paths import LakePaths

MIN_PERFORMANCE_ROWS = 100  # fewer labelled rows per window give an AUC too noisy to act on


def label_predictions(
    predictions: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    entity_key: str,
    label: str,
    max_label_lag: timedelta,
    cases: bool = False,
) -> pl.DataFrame:
    """Each entity's last scored prediction per day and model version, with the label of that day's as-of.

    A prediction on day D was made with the features stamped D 00:00, which are exactly the features
    of a label event with as-of D; labels come weekly, so it takes the newest as-of date in
    [D - max_label_lag, D] (backward as-of join). `label` and `label_as_of` are null where none exists.
    With `cases` (event grain) each prediction is one case, logged at its event time, and takes the
    label of exactly that case (entity and event time).
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
    scored = to_naive_utc(scored, "logged_at").with_columns(
        day=pl.col("logged_at").dt.truncate("1d"), decision=pl.col("decision").cast(pl.Boolean)
    )
    # Repeated requests for one entity would count it many times; its last prediction of the day stands
    # (of a case, when each prediction is one).
    scored = (
        scored.sort("logged_at")
        .group_by(entity_key, "logged_at" if cases else "day", "model_version", maintain_order=True)
        .last()
        .select(entity_key, "day", "logged_at", "model_version", "score", "decision")
    )
    events = (
        to_naive_utc(labels, "event_timestamp")
        .select(
            pl.col(entity_key).cast(scored.schema[entity_key]),
            pl.col("event_timestamp").alias("label_as_of"),
            pl.col(label).cast(pl.Int64).alias("label"),
        )
        .drop_nulls("label")
        .unique([entity_key, "label_as_of"], keep="last")
    )
    if cases:
        joined = scored.join(
            events, left_on=[entity_key, "logged_at"], right_on=[entity_key, "label_as_of"], how="left"
        )
        joined = joined.with_columns(label_as_of=pl.when(pl.col("label").is_not_null()).then(pl.col("logged_at")))
        return joined.sort("day", "model_version", entity_key)
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
    cases: bool = False,
) -> dict[str, Any]:
    """Live ROC AUC, precision, recall and F1 per day and model version, on windows whose labels matured.

    A day D is mature when D + horizon <= labels_known_until (the newest time the label source
    covers); by default that is the newest label as-of + horizon, since label events are only made
    for as-of dates whose horizon has passed. Immature days are listed with metrics None.
    Returns {"windows": [...], "by_version": [...], "labels_known_until", "horizon_days", "unlabelled"}.
    """
    joined = label_predictions(
        predictions, labels, entity_key=entity_key, label=label, max_label_lag=max_label_lag, cases=cases
    )
    if labels_known_until is None:
        newest = to_naive_utc(labels, "event_timestamp")["event_timestamp"].max() if labels.height else None
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
    predictions = score_history(paths, domain)
    # The labels the lake holds now, not the last training's: outcomes that landed since count at once.
    labels = (
        current_label_events(paths, domain)
        if paths.spine(domain.name).exists()
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
        cases=domain.grain == "event",
    )
    holdout = model_registry.model_metadata(paths, champion_tag)["metrics"]["test"]["roc_auc"]
    check = performance_check(live, holdout, domain.performance_margin, model_version=champion_tag)
    save_latest(
        paths, domain, "performance", {"champion": champion_tag, "check": check, "by_version": live["by_version"]}
    )
    return live, check
