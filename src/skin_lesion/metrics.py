"""One home for the screening metrics: counts and rates at thresholds, ranking metrics,
lesion-level bootstrap intervals and calibration error.

A case counts as positive (malignant) when its score is at or above the threshold. Training
callbacks, threshold tuning and test evaluation all compute sensitivity and specificity here.
Confidence intervals resample *lesions* with replacement (all images of a drawn lesion come
along): images of one lesion are not independent, and resampling images would give intervals
that are too narrow.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
from sklearn import metrics

from skin_lesion.defaults import BOOTSTRAP_SAMPLES, CALIBRATION_BINS


def ratio(numerator, denominator) -> np.ndarray:
    """Element-wise ``numerator / denominator``, NaN where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan),
                     where=denominator > 0)


def sweep(truth: np.ndarray, score: np.ndarray, thresholds) -> pd.DataFrame:
    """Counts, sensitivity, specificity, PPV and NPV of ``score >= t`` for every threshold t."""
    truth, score = np.asarray(truth, int), np.asarray(score, float)
    thresholds = np.atleast_1d(np.asarray(thresholds, float))
    positives, negatives = np.sort(score[truth == 1]), np.sort(score[truth == 0])
    tp = len(positives) - np.searchsorted(positives, thresholds, side="left")
    fp = len(negatives) - np.searchsorted(negatives, thresholds, side="left")
    fn, tn = len(positives) - tp, len(negatives) - fp
    return pd.DataFrame({
        "threshold": thresholds, "sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    })


def rates_at(truth: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Screening metrics of ``score >= threshold`` (NaN where undefined)."""
    row = sweep(truth, score, [threshold]).iloc[0]
    rates = np.array([row.sensitivity, row.specificity])
    return {
        "sensitivity": float(row.sensitivity), "specificity": float(row.specificity),
        "ppv": float(row.ppv), "npv": float(row.npv),
        "accuracy": float(ratio(row.tp + row.tn, row.tp + row.fp + row.tn + row.fn)),
        # the mean of the rates that are defined, as scikit-learn's balanced accuracy
        "balanced_accuracy": float(rates[~np.isnan(rates)].mean()) if (~np.isnan(rates)).any()
        else float("nan"),
    }


def ranking_metrics(truth: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision); NaN when only one class is present."""
    if len(np.unique(truth)) < 2:
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    return {"roc_auc": float(metrics.roc_auc_score(truth, score)),
            "pr_auc": float(metrics.average_precision_score(truth, score))}


def macro_roc_auc(labels: np.ndarray, probabilities: np.ndarray, present_only: bool = False) -> float:
    """One-vs-rest ROC-AUC averaged over the classes (the columns): NaN unless every class is
    present, or with ``present_only`` over the classes present (NaN with fewer than two)."""
    labels = np.asarray(labels)
    classes = np.unique(labels) if present_only else np.arange(probabilities.shape[1])
    if len(classes) < 2 or not np.isin(classes, labels).all():
        return float("nan")
    return float(np.mean([metrics.roc_auc_score(labels == c, probabilities[:, c]) for c in classes]))


def cluster_bootstrap(metric: Callable[[np.ndarray], dict[str, float]], clusters: np.ndarray,
                      samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                      level: float = 0.95) -> dict[str, list[float]]:
    """Percentile intervals of every value ``metric(indices)`` returns, resampling clusters.

    Each replicate draws as many clusters as there are, with replacement, and passes the
    indices of all their members to ``metric``. No samples: no intervals.
    """
    if samples < 1:
        return {}
    codes, inverse = np.unique(clusters, return_inverse=True)
    members = [np.flatnonzero(inverse == code) for code in range(len(codes))]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(samples):
        chosen = rng.integers(0, len(members), len(members))
        indices = np.concatenate([members[c] for c in chosen])
        for key, value in metric(indices).items():
            draws.setdefault(key, []).append(value)
    tail = (1 - level) / 2 * 100
    return {key: [float(np.nanpercentile(values, tail)), float(np.nanpercentile(values, 100 - tail))]
            for key, values in draws.items() if not np.all(np.isnan(values))}


def with_intervals(point: dict[str, float], intervals: dict[str, list[float]]) -> dict:
    """``{name: {"value": v, "ci95": [low, high] or None}}``; NaN becomes None (JSON null)."""
    return {key: {"value": None if np.isnan(value) else float(value),
                  "ci95": intervals.get(key)} for key, value in point.items()}


def calibration_bins(truth: np.ndarray, confidence: np.ndarray, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Per equal-width bin of ``confidence``: its edges, the images in it, their mean confidence
    and observed frequency (NaN for an empty bin). The calibration error and the reliability
    diagram read the same bins."""
    truth, confidence = np.asarray(truth, float), np.asarray(confidence, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    images = np.bincount(which, minlength=bins)
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:], "images": images,
                         "mean_confidence": ratio(np.bincount(which, confidence, bins), images),
                         "observed": ratio(np.bincount(which, truth, bins), images)})


def expected_calibration_error(truth: np.ndarray, confidence: np.ndarray,
                               bins: int = CALIBRATION_BINS) -> float:
    """Weighted mean gap between confidence and observed frequency over equal-width bins."""
    table = calibration_bins(truth, confidence, bins).query("images > 0")
    gaps = (table["mean_confidence"] - table["observed"]).abs()
    return float((table["images"] * gaps).sum() / max(len(np.asarray(truth)), 1))


def brier_score(truth: np.ndarray, probability: np.ndarray) -> float:
    """Mean squared error of a probability against 0/1 outcomes."""
    return float(metrics.brier_score_loss(np.asarray(truth, int), np.asarray(probability, float)))


def score_calibration(truth: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Calibration error and Brier score of a malignant score (clipped to [0, 1]: a summed
    probability can pass 1 by rounding)."""
    score = np.clip(np.asarray(score, float), 0, 1)
    return {"malignant_score_ece": expected_calibration_error(truth, score),
            "malignant_score_brier": brier_score(truth, score)}
