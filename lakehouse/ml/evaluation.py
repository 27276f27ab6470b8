"""Model evaluation: metrics, the cost-based threshold, slices, the promotion gate and plots.

Plain functions over numpy arrays. Every result is JSON-serializable (plain floats, ints, lists),
so it can go straight into Dagster metadata, a model card or a registry record.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse.declarations.domain import Costs

# log loss of a score of exactly 0 or 1 on the wrong class is infinite; clip like sklearn does.
LOG_LOSS_EPS = 1e-15
# Bootstrap resamples are drawn in blocks of about this many cells (boots x rows) to bound memory.
BOOTSTRAP_BLOCK_CELLS = 4_000_000


def _arrays(y: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    scores = np.asarray(scores, dtype=float).ravel()
    if y.shape != scores.shape:
        raise ValueError(f"{y.size} labels but {scores.size} scores")
    return y, scores


def _auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when only one class is present (it is undefined there)."""
    from sklearn.metrics import roc_auc_score

    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, scores))


def _confusion(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    flagged = scores >= threshold
    positive = y == 1
    return {
        "tp": int(np.sum(flagged & positive)),
        "fp": int(np.sum(flagged & ~positive)),
        "tn": int(np.sum(~flagged & ~positive)),
        "fn": int(np.sum(~flagged & positive)),
    }


def _precision_recall_f1(c: dict[str, int]) -> dict[str, float]:
    # Nothing flagged (or no positives) gives 0 rather than a division error: the model found nothing.
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def classification_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Ranking, probability and at-threshold metrics; AUCs are None when only one class is present."""
    from sklearn.metrics import average_precision_score

    y, scores = _arrays(y, scores)
    both_classes = y.size > 0 and y.min() != y.max()
    clipped = np.clip(scores, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    c = _confusion(y, scores, threshold)
    return {
        "rows": int(y.size),
        "positives": int(y.sum()),
        "roc_auc": _auc(y, scores),
        "pr_auc": float(average_precision_score(y, scores)) if both_classes else None,
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))) if y.size else None,
        "brier": float(np.mean((scores - y) ** 2)) if y.size else None,
        **_precision_recall_f1(c),
        **c,
        "threshold": float(threshold),
    }


def expected_value(y: np.ndarray, scores: np.ndarray, threshold: float, costs: Costs) -> float:
    """Business value per entity scored, relative to contacting nobody: (tp*FN - flagged*FP) / rows."""
    # Every flagged case gets the action (costs.false_positive each, positive or not); every flagged
    # positive is saved, saving costs.false_negative. Unflagged cases cost the same as doing nothing,
    # so they add 0. Dividing by rows makes runs of different sizes comparable.
    y, scores = _arrays(y, scores)
    if y.size == 0:
        return 0.0
    c = _confusion(y, scores, threshold)
    return float((c["tp"] * costs.false_negative - (c["tp"] + c["fp"]) * costs.false_positive) / y.size)


def choose_threshold(y_valid: np.ndarray, scores_valid: np.ndarray, costs: Costs) -> dict:
    """The threshold that maximizes expected value on validation data; ties go to the higher threshold."""
    y, scores = _arrays(y_valid, scores_valid)
    n = y.size
    # A threshold above every score (and above 1) flags nobody: the do-nothing baseline, EV 0.
    nobody = 1.0 if n == 0 or scores.max() < 1.0 else float(np.nextafter(scores.max(), np.inf))
    if n == 0:
        return {"threshold": nobody, "expected_value": 0.0, "expected_value_at_0_5": 0.0}
    # Sort once by descending score; flagging "score >= t" for a candidate t = a unique score flags a
    # prefix of that order, so cumulative sums give tp and flagged counts for every candidate at once.
    order = np.argsort(-scores, kind="stable")
    s, tp = scores[order], np.cumsum(y[order])
    flagged = np.arange(1, n + 1)
    group_end = np.r_[s[1:] != s[:-1], True]  # the last row of each run of equal scores
    thresholds = np.r_[nobody, s[group_end]]  # descending
    tp = np.r_[0.0, tp[group_end]]
    flagged = np.r_[0, flagged[group_end]]
    ev = (tp * costs.false_negative - flagged * costs.false_positive) / n
    # The first candidate within rounding of the best is the highest such threshold: fewer offers
    # for the same value.
    best = ev.max()
    i = int(np.flatnonzero(ev >= best - 1e-12 * max(1.0, abs(best)))[0])
    return {
        "threshold": float(thresholds[i]),
        "expected_value": float(ev[i]),
        "expected_value_at_0_5": expected_value(y, scores, 0.5, costs),
    }


def calibration_curve(y: np.ndarray, scores: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability table over quantile bins of the score: mean score, observed positive rate, rows."""
    y, scores = _arrays(y, scores)
    if y.size == 0:
        return []
    # Quantile edges give every bin about the same rows (scores of a rare outcome crowd near 0, so fixed-width
    # bins would leave the top bins nearly empty); repeated edges from tied scores are merged.
    edges = np.unique(np.quantile(scores, np.linspace(0, 1, bins + 1)))
    bin_of = np.searchsorted(edges[1:-1], scores, side="right")
    table = []
    for b in range(max(len(edges) - 1, 1)):  # all-equal scores give a single edge, one bin
        mask = bin_of == b
        if mask.any():
            table.append(
                {
                    "mean_score": float(scores[mask].mean()),
                    "positive_rate": float(y[mask].mean()),
                    "rows": int(mask.sum()),
                }
            )
    return table


def _plain(value: Any) -> Any:
    """A slice value as a JSON-friendly Python value (numpy scalars unwrapped, NaN as None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _slice_groups(column: np.ndarray) -> dict[Any, np.ndarray]:
    values = [_plain(v) for v in np.asarray(column, dtype=object).ravel()]
    groups: dict[Any, list[int]] = {}
    for i, v in enumerate(values):
        groups.setdefault(v, []).append(i)
    # Sorted by text so reports list slices in a stable order whatever the value types.
    return {v: np.asarray(groups[v]) for v in sorted(groups, key=lambda v: (v is None, str(v)))}


def slice_metrics(slices: dict[str, np.ndarray], y: np.ndarray, scores: np.ndarray, threshold: float) -> list[dict]:
    """One record per (slice column, value): rows, positives, ROC AUC (None if one class), precision, recall, F1."""
    y, scores = _arrays(y, scores)
    records = []
    for name, column in slices.items():
        if len(column) != y.size:
            raise ValueError(f"slice {name!r} has {len(column)} rows but there are {y.size} labels")
        for value, idx in _slice_groups(column).items():
            ys, ss = y[idx], scores[idx]
            records.append(
                {
                    "slice": name,
                    "value": value,
                    "rows": int(idx.size),
                    "positives": int(ys.sum()),
                    "roc_auc": _auc(ys, ss),
                    **_precision_recall_f1(_confusion(ys, ss, threshold)),
                }
            )
    return records


def _weighted_aucs(y: np.ndarray, scores: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of `counts` (how often each original row was drawn); NaN if one class."""
    # A bootstrap resample is the original rows with integer weights, so the AUC of each resample is
    # P(score_pos > score_neg) + 0.5 * P(tie) under those weights. Sorting once and summing weights
    # per distinct score keeps this a few matrix operations per block of resamples.
    order = np.argsort(scores, kind="stable")
    s, pos = scores[order], y[order] == 1
    counts = counts[:, order].astype(float)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first row of each distinct score
    w_pos = np.add.reduceat(counts * pos, starts, axis=1)
    w_neg = np.add.reduceat(counts * ~pos, starts, axis=1)
    neg_below = np.cumsum(w_neg, axis=1) - w_neg
    n_pos, n_neg = w_pos.sum(axis=1), w_neg.sum(axis=1)
    wins = (w_pos * (neg_below + 0.5 * w_neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), wins / (n_pos * n_neg), np.nan)


def paired_bootstrap_auc(
    y: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, n_boot: int = 1000, seed: int = 0
) -> dict:
    """AUC(b) - AUC(a) with a paired bootstrap 95% interval (both models scored on the same resamples)."""
    y, scores_a = _arrays(y, scores_a)
    _, scores_b = _arrays(y, scores_b)
    auc_a, auc_b = _auc(y, scores_a), _auc(y, scores_b)
    n = y.size
    if auc_a is None or auc_b is None:
        return {"diff": None, "low": None, "high": None, "n_boot": 0, "skipped": int(n_boot)}
    rng = np.random.default_rng(seed)
    block = max(1, BOOTSTRAP_BLOCK_CELLS // n)
    blocks = []
    for start in range(0, n_boot, block):
        k = min(block, n_boot - start)
        # Drawing row indices with replacement, then counting them per row: the same counts feed both
        # models, which is what makes the comparison paired (shared noise cancels out of the difference).
        idx = rng.integers(0, n, size=(k, n))
        counts = np.bincount((idx + n * np.arange(k)[:, None]).ravel(), minlength=k * n).reshape(k, n)
        blocks.append(_weighted_aucs(y, scores_b, counts) - _weighted_aucs(y, scores_a, counts))
    diffs = np.concatenate(blocks) if blocks else np.empty(0)
    valid = diffs[~np.isnan(diffs)]  # resamples that drew a single class have no AUC
    low, high = (float(q) for q in np.percentile(valid, [2.5, 97.5])) if valid.size else (None, None)
    return {
        "diff": float(auc_b - auc_a),
        "low": low,
        "high": high,
        "n_boot": int(valid.size),
        "skipped": int(n_boot - valid.size),
    }


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger replaces the champion, why, and the numbers behind it."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    comparison: dict = field(default_factory=dict)


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def promotion_gate(
    y: np.ndarray,
    challenger_scores: np.ndarray,
    champion_scores: np.ndarray | None,
    baseline_scores: dict[str, np.ndarray],
    slices: dict[str, np.ndarray],
    threshold: float,
    min_auc_gain: float = 0.0,
    slice_tolerance: float = 0.03,
    min_slice_rows: int = 200,
    seed: int = 0,
) -> GateDecision:
    """Promote a challenger only on evidence: beat the baselines (first model), or the champion (later)."""
    y, challenger_scores = _arrays(y, challenger_scores)
    challenger_auc = _auc(y, challenger_scores)
    comparison: dict[str, Any] = {
        "rows": int(y.size),
        "positives": int(y.sum()),
        "threshold": float(threshold),
        "challenger_auc": challenger_auc,
        "baseline_auc": {name: _auc(y, _arrays(y, s)[1]) for name, s in baseline_scores.items()},
    }
    if challenger_auc is None:
        return GateDecision(
            False, ["hold-out set has only one class: ROC AUC is undefined, nothing to decide on"], comparison
        )

    if champion_scores is None:
        # First model: it has to earn its complexity against simple baselines.
        reasons, promote = [], True
        for name, auc in comparison["baseline_auc"].items():
            beats = challenger_auc > auc
            promote &= beats
            reasons.append(
                f"ROC AUC {challenger_auc:.3f} {'beats' if beats else 'does not beat'} "
                f"baseline {name} {auc:.3f} ({_signed(challenger_auc - auc)})"
            )
        if not baseline_scores:
            reasons.append(f"no champion and no baselines to compare against; ROC AUC {challenger_auc:.3f}")
        return GateDecision(promote, reasons, comparison)

    _, champion_scores = _arrays(y, champion_scores)
    boot = paired_bootstrap_auc(y, champion_scores, challenger_scores, seed=seed)
    comparison["champion_auc"] = _auc(y, champion_scores)
    comparison["bootstrap"] = boot
    comparison["min_auc_gain"] = float(min_auc_gain)
    reasons = []
    # The lower end of the interval, not the point estimate, must clear the bar: a gain the data
    # cannot distinguish from noise is not worth the risk of a swap.
    diff, low, high = boot["diff"], boot["low"], boot["high"]
    supported = low is not None and low > min_auc_gain
    interval = (
        f"AUC {_signed(diff)} (95% CI {_signed(low)}..{_signed(high)}) over champion"
        if low is not None and high is not None
        else f"AUC {_signed(diff)} over champion (no usable resamples)"
    )
    if supported:
        reasons.append(f"{interval}: statistically supported (lower bound > {min_auc_gain:.3f})")
    else:
        reasons.append(f"{interval}: not statistically supported (lower bound must exceed {min_auc_gain:.3f})")

    # A better average can hide a group the new model serves worse; large, two-class slices must not
    # regress by more than the tolerance.
    challenger_slices = slice_metrics(slices, y, challenger_scores, threshold)
    champion_slices = slice_metrics(slices, y, champion_scores, threshold)
    slice_rows, regressed, checked = [], [], 0
    for new, old in zip(challenger_slices, champion_slices):
        # Same rows and labels for both models, so both AUCs exist or neither does.
        delta = new["roc_auc"] - old["roc_auc"] if new["roc_auc"] is not None else None
        judged = new["rows"] >= min_slice_rows and delta is not None
        row = {
            "slice": new["slice"],
            "value": new["value"],
            "rows": new["rows"],
            "positives": new["positives"],
            "challenger_auc": new["roc_auc"],
            "champion_auc": old["roc_auc"],
            "delta": delta,
            "checked": judged,
        }
        slice_rows.append(row)
        if delta is None or not judged:
            continue
        checked += 1
        if delta < -slice_tolerance:
            regressed.append(row)
            reasons.append(
                f"slice {new['slice']}={new['value']} AUC {new['roc_auc']:.3f} vs champion "
                f"{old['roc_auc']:.3f} ({_signed(delta)} > tolerance {slice_tolerance:.3f})"
            )
    if not regressed:
        reasons.append(
            f"no slice regressed by more than {slice_tolerance:.3f} "
            f"({checked} slice(s) checked with >= {min_slice_rows} rows and both classes)"
        )
    comparison["slices"] = slice_rows
    comparison["slice_tolerance"] = float(slice_tolerance)
    comparison["min_slice_rows"] = int(min_slice_rows)
    comparison["challenger_metrics"] = classification_metrics(y, challenger_scores, threshold)
    comparison["champion_metrics"] = classification_metrics(y, champion_scores, threshold)
    return GateDecision(supported and not regressed, reasons, comparison)


def _save_png(fig: Any, out_dir: Path, name: str) -> Path:
    """Write a figure to out_dir/name under a temporary name, then rename it into place."""
    target = out_dir / name
    # Dot-prefixed like lakehouse.io's temporaries, so a crash leaves only litter that no glob reads.
    tmp = out_dir / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        fig.savefig(tmp, format="png", dpi=100)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def evaluation_plots(
    out_dir: Path,
    y: np.ndarray,
    scores: np.ndarray,
    importance: dict[str, float],
    calibration: list[dict] | None = None,
) -> dict[str, Path]:
    """Write calibration.png, pr_curve.png and importance.png into out_dir; return their paths."""
    # Figures are built with the object API on an Agg canvas rather than pyplot: no global backend
    # switch, no GUI, no figure registry to leak from inside a long-running Dagster process.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve

    y, scores = _arrays(y, scores)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    calibration = calibration_curve(y, scores) if calibration is None else calibration
    paths = {}

    def figure() -> tuple[Any, Any]:
        fig = Figure(figsize=(6, 4), dpi=100, layout="tight")
        FigureCanvasAgg(fig)
        return fig, fig.add_subplot()

    fig, ax = figure()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(
        [b["mean_score"] for b in calibration], [b["positive_rate"] for b in calibration], marker="o", label="model"
    )
    ax.set(
        title="Calibration (quantile bins)",
        xlabel="mean predicted probability",
        ylabel="observed positive rate",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="upper left")
    paths["calibration"] = _save_png(fig, out_dir, "calibration.png")

    fig, ax = figure()
    rate = float(y.mean()) if y.size else 0.0
    if y.size and y.min() != y.max():
        precision, recall, _ = precision_recall_curve(y, scores)
        ax.plot(recall, precision, label="model")
    else:
        ax.text(0.5, 0.5, "needs both classes", ha="center", va="center")
    ax.axhline(rate, linestyle="--", color="grey", label=f"positive rate {rate:.3f}")
    ax.set(title="Precision-recall", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    paths["pr_curve"] = _save_png(fig, out_dir, "pr_curve.png")

    fig, ax = figure()
    top = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:15]
    # Reversed so the most important feature is drawn at the top.
    ax.barh([k for k, _ in reversed(top)], [float(v) for _, v in reversed(top)])
    ax.set(title=f"Feature importance (top {len(top)} by gain)", xlabel="gain", ylabel="feature")
    ax.tick_params(axis="y", labelsize=8)
    paths["importance"] = _save_png(fig, out_dir, "importance.png")
    return paths
