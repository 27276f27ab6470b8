"""Drift thresholds from the reference's own variability, as NannyML sets them from reference chunks.

A fixed threshold cries wolf on data that moves on its own (rolling windows that fill up, a customer
base that ages) and misses small real changes in features that never move. Here each feature's
threshold is measured on the champion's reference window itself:

1. The reference is split by time into chunks (whole as-of times, about equal rows, at most
   `DriftConfig.calibration_chunks`), each sampled down to the current window's size so a chunk
   carries the same sampling noise as the window it stands in for.
2. Each chunk is compared with the rest of the reference using Evidently's own statistic (the method
   the check uses); the bound is their median + `calibration_sigmas` robust standard deviations
   (1.4826 x MAD, so one odd chunk, a day with a file missing, does not set it), and never below the
   same measure on chunks drawn at random (sampling noise alone).
3. The data's own pace of change (the statistic between the older and newer half of the champion's
   training rows, less sampling noise, per day between them) is extrapolated over the days from the
   reference's middle to the current window's: the window is that much further away than the
   reference's own centre.

threshold = bound + pace x days from the reference to the window. The share limit is raised to the importance
share that at least two held-out chunks drift by against thresholds from the other chunks, so a
reference that is restless by nature does not fail by nature; the configured limit is the floor.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import polars as pl

from lakehouse.declarations.domain import DriftConfig

# The reference rows calibration measures (sampled, seeded): about 40 statistics per feature, each sorting
# its rows, so this bounds its time (about 3 s for 21 features on 2 cores).
CALIBRATION_ROWS = 25_000


@dataclass(frozen=True)
class Calibration:
    """Per-feature thresholds and the share limit measured on the reference's time chunks, with how."""

    thresholds: dict[str, float]
    max_weighted_drift_share: float
    chunks: int
    days_beyond_reference: float
    features: dict[str, dict[str, float]]  # feature -> bound, pace_per_day, threshold
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evidently_statistic(method: str, kind: str) -> Any:
    """Evidently's drift statistic `method` for a column kind: f(reference, current) -> score (pandas Series)."""
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    column_type = ColumnType.Categorical if kind == "categorical" else ColumnType.Numerical

    def statistic(reference: Any, current: Any) -> float:
        if len(reference) == 0 or len(current) == 0:  # a feature all null in a chunk or half: nothing to measure
            return math.nan
        test = get_stattest(reference, current, column_type, method)
        return float(test(reference, current, column_type, None).drift_score)

    return statistic


def time_chunks(times: pl.Series, max_chunks: int, min_rows: int) -> list[list[Any]]:
    """Contiguous groups of whole times, about equal in rows, each of at least `min_rows` rows (at most max_chunks)."""
    counts = times.value_counts().sort(times.name)
    distinct, rows = counts[times.name].to_list(), counts["count"].to_list()
    total = sum(rows)
    k = min(max_chunks, len(distinct), total // max(min_rows, 1))
    while k >= 1:
        # Each time goes to the chunk its middle row falls in: k chunks as equal as whole times allow.
        index, before = [], 0
        for n in rows:
            index.append(min(int((before + n / 2) * k / total), k - 1))
            before += n
        chunks = [[t for t, i in zip(distinct, index, strict=True) if i == c] for c in range(k)]
        sizes = [sum(n for n, i in zip(rows, index, strict=True) if i == c) for c in range(k)]
        if all(chunks) and min(sizes) >= min_rows:
            return chunks
        k -= 1
    return []


def _mean_time(times: pl.Series) -> datetime:
    return times.cast(pl.Datetime("us")).dt.replace_time_zone(None).mean()


def _days(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 86400


def calibrate(
    reference: pl.DataFrame,
    current_times: pl.Series,
    current_rows: int,
    kinds: Mapping[str, str],
    weights: Mapping[str, float],
    config: DriftConfig,
    timestamp: str = "event_timestamp",
    seed: int = 0,
    history: pl.DataFrame | None = None,
) -> Calibration | None:
    """Thresholds for `kinds`' features from `reference`'s time chunks, or None when it has fewer than 3."""
    if reference.height > CALIBRATION_ROWS:
        reference = reference.sample(n=CALIBRATION_ROWS, seed=seed)
    chunks = time_chunks(reference[timestamp], config.calibration_chunks, config.min_rows)
    if len(chunks) < 3:
        return None
    sample_rows = max(current_rows, config.min_rows)
    chunk_of = pl.DataFrame(
        {timestamp: [t for c in chunks for t in c], "_chunk": [i for i, c in enumerate(chunks) for _ in c]},
        schema_overrides={timestamp: reference.schema[timestamp]},
    )
    labelled = reference.join(chunk_of, on=timestamp, how="left")
    # From the reference's middle, though its chunks already show part of that distance: the pace is
    # extrapolated from a few chunks and days, and this margin keeps a steady trend from alarming.
    days_beyond = max(_days(_mean_time(labelled[timestamp]), _mean_time(current_times)), 0.0)
    # The pace of change from the older and newer half of the longest history given (the whole training
    # set spans more time than the reference, so the pace is measured over more days than it is extrapolated).
    history = reference if history is None else history.select(reference.columns)
    if history.height > CALIBRATION_ROWS:
        history = history.sample(n=CALIBRATION_ROWS, seed=seed)
    middle = history[timestamp].cast(pl.Datetime("us")).dt.replace_time_zone(None).median()
    older = pl.col(timestamp).cast(pl.Datetime("us")).dt.replace_time_zone(None) <= middle
    halves = [history.filter(older), history.filter(~older)]
    half_days = max(_days(_mean_time(halves[0][timestamp]), _mean_time(halves[1][timestamp])), 1.0)
    statistics_of = {f: evidently_statistic(config.method(f, kind), kind) for f, kind in kinds.items()}

    def chunk_vs_rest(frame: pl.DataFrame) -> dict[str, list[float]]:
        """Each feature's statistic between every chunk (at the current window's size) and the rest."""
        values: dict[str, list[float]] = {f: [] for f in kinds}
        for i in range(len(chunks)):
            chunk, rest = frame.filter(pl.col("_chunk") == i), frame.filter(pl.col("_chunk") != i)
            # The chunk at the current window's size, so it carries the sampling noise the window has.
            chunk = chunk.sample(n=sample_rows, seed=seed) if chunk.height > sample_rows else chunk
            for f, kind in kinds.items():
                values[f].append(statistics_of[f](_series(rest, f, kind), _series(chunk, f, kind)))
        return values

    stats = chunk_vs_rest(labelled)
    # The same chunks drawn at random instead of by time: sampling noise alone, a floor under few time chunks.
    shuffled = labelled.with_columns(pl.Series("_chunk", _shuffled_chunk_ids(labelled["_chunk"], seed)))
    noise = chunk_vs_rest(shuffled)
    features: dict[str, dict[str, float]] = {}
    thresholds: dict[str, float] = {}
    for f, kind in kinds.items():
        # The part of the halves' distance beyond sampling noise is change over time.
        between_halves = statistics_of[f](_series(halves[0], f, kind), _series(halves[1], f, kind))
        pace = max(between_halves - _median(noise[f]), 0.0) / half_days if math.isfinite(between_halves) else 0.0
        bound = max(_upper(stats[f], config.calibration_sigmas), _upper(noise[f], config.calibration_sigmas))
        thresholds[f] = float(config.thresholds[f]) if f in config.thresholds else bound + pace * days_beyond
        features[f] = {"bound": bound, "pace_per_day": pace, "threshold": thresholds[f]}

    # Hold each chunk out: how much importance would drift against thresholds made without it.
    held_out_shares = []
    for i in range(len(chunks)):
        drifted = [
            f
            for f in kinds
            if f not in config.thresholds
            and stats[f][i] > _upper(stats[f][:i] + stats[f][i + 1 :], config.calibration_sigmas)
        ]
        total = sum(weights.get(f, 0.0) for f in kinds) or 1.0
        held_out_shares.append(sum(weights.get(f, 0.0) for f in drifted) / total)
    # Raised only to a share at least two held-out chunks reach: one odd chunk may be a fluke or a one-off.
    repeated = sorted(held_out_shares)[-2]
    limit = max(config.max_weighted_drift_share, repeated)
    reason = (
        f"thresholds from {len(chunks)} time chunks of the reference ({sample_rows:,} rows each at most): "
        f"median + {config.calibration_sigmas:g} robust sd of chunk-vs-rest drift, plus the data's own pace of "
        f"change over the {days_beyond:.1f} days from its middle to the current window's; share limit "
        f"{limit:.1%} (reached by two held-out chunks: {repeated:.1%}; floor {config.max_weighted_drift_share:.1%})"
    )
    return Calibration(thresholds, limit, len(chunks), days_beyond, features, reason)


def _shuffled_chunk_ids(chunk_ids: pl.Series, seed: int) -> list[int]:
    """The same chunk sizes, rows assigned at random."""
    return chunk_ids.sample(fraction=1.0, shuffle=True, seed=seed).to_list()


def _upper(values: Sequence[float], sigmas: float) -> float:
    """Median + `sigmas` robust standard deviations (1.4826 x MAD): one odd chunk (a day with a file missing)
    does not set the bound for every later window, as a plain mean + sd over a few chunks would."""
    middle = _median(values)
    mad = _median([abs(v - middle) for v in values if math.isfinite(v)])
    return middle + sigmas * 1.4826 * mad


def _median(values: Sequence[float]) -> float:
    """The median of the measured values (0 when none was measurable)."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else 0.0


def _series(frame: pl.DataFrame, feature: str, kind: str) -> Any:
    """One feature's non-null values as Evidently measures them: float64, or text categories."""
    s = frame[feature]
    s = s.cast(pl.String, strict=False) if kind == "categorical" else s.cast(pl.Float64, strict=False).fill_nan(None)
    return s.drop_nulls().to_pandas()
