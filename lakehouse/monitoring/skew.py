"""Training/serving skew: served feature values against Feast's point-in-time recompute at the time they were written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from lakehouse.declarations.domain import Domain
from lakehouse.feature_store.feast_objects import historical_features
from lakehouse.ml import model_registry
from lakehouse.monitoring.served import served_features, to_naive_utc
from lakehouse.paths import LakePaths
from lakehouse.serving.prediction_log import prediction_log_table

SKEW_REL_TOL = 1e-6  # served float32/JSON round trips differ from the offline float64 in the 7th digit


SKEW_ABS_TOL = 1e-9


MAX_SKEW_SHARE = 0.01  # share of sampled rows per feature allowed to differ (late materialization, say)


Recompute = Callable[[pl.DataFrame], pl.DataFrame]


def feast_recompute(store: Any, domain: Domain) -> Recompute:
    """A recompute function over Feast's point-in-time join (get_historical_features of the feature service)."""

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
    rows = to_naive_utc(rows, timestamp).unique([entity_key, timestamp], keep="last", maintain_order=True)
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
        to_naive_utc(recomputed, "event_timestamp")
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


def domain_skew(
    paths: LakePaths, domain: Domain, store: Any, champion_tag: str, sample_size: int = 1000
) -> dict[str, Any]:
    """Served online features (predict_ids log rows) vs Feast's point-in-time recompute at their event time."""
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
