"""Evaluation: hand-checked metrics, the cost-optimal threshold, the promotion gate and the plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lakehouse.declarations.domain import Costs
from lakehouse.ml.evaluation import (
    _weighted_aucs,
    calibration_curve,
    choose_threshold,
    classification_metrics,
    evaluation_plots,
    expected_value,
    paired_bootstrap_auc,
    promotion_gate,
    slice_metrics,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Four customers flagged at 0.5 (two churners, two not), four not flagged (one churner).
Y = np.array([1, 1, 0, 0, 1, 0, 0, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])


def test_metrics_on_a_hand_computed_example():
    m = classification_metrics(Y, SCORES, threshold=0.5)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 2, 3, 1)
    assert (m["rows"], m["positives"]) == (8, 3)
    assert m["precision"] == pytest.approx(2 / 4)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    # Positive-negative pairs ranked correctly: 5 + 5 + 3 of 15.
    assert m["roc_auc"] == pytest.approx(13 / 15)
    assert m["brier"] == pytest.approx(np.mean((SCORES - Y) ** 2))
    assert 0 < m["pr_auc"] <= 1 and m["log_loss"] > 0
    json.dumps(m)  # plain Python values only


def test_threshold_is_inclusive():
    m = classification_metrics(Y, SCORES, threshold=0.8)
    assert (m["tp"], m["fp"]) == (2, 0)


def test_one_class_gives_none_aucs_without_raising():
    scores = np.array([0.1, 0.5, 0.9])
    m = classification_metrics(np.zeros(3), scores, threshold=0.5)
    assert m["roc_auc"] is None and m["pr_auc"] is None
    assert (m["fp"], m["tn"], m["precision"], m["recall"]) == (2, 1, 0.0, 0.0)
    assert classification_metrics(np.ones(3), scores, 0.5)["roc_auc"] is None
    [record] = slice_metrics({"plan": np.array(["basic"] * 3)}, np.ones(3), scores, 0.5)
    assert record["roc_auc"] is None
    assert paired_bootstrap_auc(np.zeros(3), scores, scores)["diff"] is None


def test_expected_value_counts_every_offer_and_every_saved_churner():
    costs = Costs(false_positive=10.0, false_negative=100.0)
    # At 0.5: 4 offers (40) save 2 churners (200): 160 over 8 customers.
    assert expected_value(Y, SCORES, 0.5, costs) == pytest.approx(160 / 8)
    assert expected_value(Y, SCORES, 1.01, costs) == 0.0  # flag nobody: the do-nothing baseline


def _calibrated_groups() -> tuple[np.ndarray, np.ndarray]:
    """100 customers at each score, of whom exactly score * 100 churn: perfectly calibrated."""
    y, scores = [], []
    for p in (0.02, 0.05, 0.08, 0.10, 0.15, 0.30, 0.60):
        churners = round(p * 100)
        y += [1] * churners + [0] * (100 - churners)
        scores += [p] * 100
    return np.array(y), np.array(scores)


def test_threshold_on_a_known_cost_matrix():
    # An offer costs 10 and a saved churner is worth 100, so contacting a customer pays iff P(churn) > 0.1.
    # On calibrated scores the best threshold is the lowest score above 0.1; the 0.10 group breaks even,
    # and a tie goes to the higher threshold (fewer offers for the same value).
    y, scores = _calibrated_groups()
    costs = Costs(false_positive=10.0, false_negative=100.0)
    chosen = choose_threshold(y, scores, costs)
    assert chosen["threshold"] == pytest.approx(0.15)
    # Groups 0.15, 0.30, 0.60 each add (p * 100 - 10) * 100 per 700 customers.
    assert chosen["expected_value"] == pytest.approx((5 + 20 + 50) * 100 / 700)
    assert chosen["expected_value"] == pytest.approx(expected_value(y, scores, chosen["threshold"], costs))
    assert chosen["expected_value"] >= chosen["expected_value_at_0_5"]
    assert chosen["expected_value_at_0_5"] == pytest.approx(expected_value(y, scores, 0.5, costs))
    json.dumps(chosen)


def test_threshold_flags_nobody_when_no_offer_pays():
    y, scores = _calibrated_groups()
    chosen = choose_threshold(y, scores, Costs(false_positive=100.0, false_negative=10.0))
    assert chosen["threshold"] >= 1.0 and chosen["expected_value"] == 0.0
    assert (
        classification_metrics(y, scores, chosen["threshold"])["tp"]
        + classification_metrics(y, scores, chosen["threshold"])["fp"]
        == 0
    )


def test_calibration_curve_uses_quantile_bins():
    y, scores = _calibrated_groups()
    table = calibration_curve(y, scores, bins=7)
    assert sum(b["rows"] for b in table) == len(y)
    # Calibrated by construction: each bin's positive rate matches its mean score.
    for b in table:
        assert b["positive_rate"] == pytest.approx(b["mean_score"], abs=0.02)
    assert calibration_curve(y, np.full(len(y), 0.3)) == [
        {"mean_score": pytest.approx(0.3), "positive_rate": pytest.approx(y.mean()), "rows": len(y)}
    ]


def test_slice_metrics_one_record_per_value():
    slices = {
        "plan": np.array(["basic", "basic", "premium", "premium"] * 2),
        "region": np.array(["north"] * 4 + ["south"] * 4),
    }
    records = slice_metrics(slices, Y, SCORES, threshold=0.5)
    assert [(r["slice"], r["value"], r["rows"]) for r in records] == [
        ("plan", "basic", 4),
        ("plan", "premium", 4),
        ("region", "north", 4),
        ("region", "south", 4),
    ]
    north = records[2]
    assert (north["positives"], north["precision"], north["recall"]) == (2, 0.5, 1.0)
    json.dumps(records)


def test_resampled_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.3).astype(float)
    scores = np.round(rng.random(300) + 0.3 * y, 1)  # many tied scores
    idx = rng.integers(0, 300, size=(5, 300))
    counts = np.stack([np.bincount(i, minlength=300) for i in idx])
    expected = [roc_auc_score(y[i], scores[i]) for i in idx]
    assert _weighted_aucs(y, scores, counts) == pytest.approx(expected)


# --- the promotion gate ------------------------------------------------------------------------------

N = 3000
REGIONS = np.array(["north", "south", "east", "west"])


@pytest.fixture(scope="module")
def holdout() -> dict[str, np.ndarray]:
    """A hold-out set whose labels follow a latent risk; models are that risk plus noise of chosen size."""
    rng = np.random.default_rng(42)
    risk = rng.normal(size=N)
    y = (rng.random(N) < 1 / (1 + np.exp(-(2 * risk - 1.5)))).astype(int)
    return {
        "risk": risk,
        "y": y,
        "region": REGIONS[rng.integers(0, 4, size=N)],
        "champion": risk + rng.normal(scale=1.0, size=N),  # the model in production
    }


def _noise(scale: float, seed: int) -> np.ndarray:
    # Each model gets its own seed, so a test's outcome does not depend on which tests ran before it.
    return np.random.default_rng(seed).normal(scale=scale, size=N)


def _noisy(h: dict, scale: float, seed: int = 1) -> np.ndarray:
    return h["risk"] + _noise(scale, seed)


def _gate(h: dict, challenger: np.ndarray, **kwargs):
    kwargs.setdefault("slices", {"region": h["region"]})
    kwargs.setdefault("baseline_scores", {})
    return promotion_gate(h["y"], challenger, h["champion"], threshold=0.5, **kwargs)


def test_clearly_better_challenger_is_promoted(holdout):
    decision = _gate(holdout, _noisy(holdout, 0.3))
    assert decision.promote, decision.reasons
    assert decision.comparison["bootstrap"]["low"] > 0
    assert "statistically supported" in decision.reasons[0] and "95% CI" in decision.reasons[0]
    json.dumps(decision.comparison)


def test_worse_challenger_is_refused(holdout):
    decision = _gate(holdout, _noisy(holdout, 2.5))
    assert not decision.promote
    assert decision.comparison["bootstrap"]["high"] < 0
    assert "not statistically supported" in decision.reasons[0]


def test_marginal_gain_within_noise_is_refused(holdout):
    # The champion's errors shrunk by a tenth, plus some noise of its own: slightly better on paper.
    risk = holdout["risk"]
    challenger = risk + 0.9 * (holdout["champion"] - risk) + _noise(0.4, seed=4)
    decision = _gate(holdout, challenger)
    boot = decision.comparison["bootstrap"]
    assert boot["diff"] > 0
    assert boot["low"] < 0 < boot["high"]
    assert not decision.promote
    assert "not statistically supported" in decision.reasons[0]


def test_required_gain_raises_the_bar(holdout):
    challenger = _noisy(holdout, 0.3)
    assert _gate(holdout, challenger).promote
    assert not _gate(holdout, challenger, min_auc_gain=0.5).promote


def test_regressed_large_slice_blocks_a_better_challenger(holdout):
    challenger = _noisy(holdout, 0.2)
    south = holdout["region"] == "south"
    challenger[south] = _noisy(holdout, 2.0, seed=3)[south]  # much better elsewhere, worse for one region
    decision = _gate(holdout, challenger)
    assert decision.comparison["bootstrap"]["low"] > 0  # better overall...
    assert not decision.promote  # ...but not at the south's expense
    [slice_reason] = [r for r in decision.reasons if r.startswith("slice ")]
    assert "region=south" in slice_reason and "tolerance 0.030" in slice_reason


def test_small_regressed_slice_does_not_block(holdout):
    challenger = _noisy(holdout, 0.3)
    tiny = np.arange(N) < 150
    challenger[tiny] = _noise(1.0, seed=4)[tiny]  # pure noise for a small pilot cohort
    cohort = np.where(tiny, "pilot", "rest")
    decision = _gate(holdout, challenger, slices={"cohort": cohort}, min_slice_rows=200)
    assert decision.promote, decision.reasons
    pilot = next(s for s in decision.comparison["slices"] if s["value"] == "pilot")
    assert not pilot["checked"] and pilot["delta"] < -0.03


def test_first_model_must_beat_every_baseline(holdout):
    y = holdout["y"]
    baselines = {"logistic": _noisy(holdout, 0.5, seed=5), "prior": np.full(N, y.mean())}
    weak = promotion_gate(y, _noisy(holdout, 2.0, seed=6), None, baselines, {}, threshold=0.5)
    assert not weak.promote
    assert any("does not beat baseline logistic" in r for r in weak.reasons)
    assert any("beats baseline prior" in r for r in weak.reasons)

    strong = promotion_gate(y, _noisy(holdout, 0.2), None, baselines, {}, threshold=0.5)
    assert strong.promote
    assert len(strong.reasons) == 2 and all("beats baseline" in r for r in strong.reasons)
    assert set(strong.comparison["baseline_auc"]) == {"logistic", "prior"}


def test_bootstrap_is_reproducible_with_a_seed(holdout):
    y, a = holdout["y"], holdout["champion"]
    b = a + np.random.default_rng(0).normal(scale=0.5, size=N)
    first = paired_bootstrap_auc(y, a, b, n_boot=200, seed=7)
    assert first == paired_bootstrap_auc(y, a, b, n_boot=200, seed=7)
    assert first != paired_bootstrap_auc(y, a, b, n_boot=200, seed=8)
    assert first["diff"] == pytest.approx(roc_auc_score(y, b) - roc_auc_score(y, a))
    assert first["low"] <= first["diff"] <= first["high"] and first["n_boot"] == 200


def test_plots_are_written_as_png(tmp_path):
    y, scores = _calibrated_groups()
    importance = {f"feature_{i}": float(i) for i in range(20)}
    paths = evaluation_plots(tmp_path / "plots", y, scores, importance)
    assert set(paths) == {"calibration", "pr_curve", "importance"}
    assert {p.name for p in paths.values()} == {"calibration.png", "pr_curve.png", "importance.png"}
    for p in paths.values():
        assert p.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "calibration.png",
        "importance.png",
        "pr_curve.png",
    ]  # no temporaries left behind
