"""Choosing the operating point of a screening model on validation data.

A case counts as positive (malignant) when its score is at or above the threshold. Thresholds
are swept over a grid of 1,001 values from 0 to 1 plus every distinct score; the chosen one
reaches the target sensitivity with the highest specificity (ties: higher sensitivity, then the
higher threshold). Only ``val_probs.npz`` is read: the test split stays untouched until
evaluation.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn.metrics import roc_auc_score, roc_curve

from src.io_utils import read_json, refuse_overwrite, write_json_atomic
from src.labels import MALIGNANT, malignant_of_labels, malignant_score
from src.layout import RunLayout
from src.plots import roc_figure, save_figure, threshold_figure

log = logging.getLogger(__name__)

TARGET_SENSITIVITIES = (0.80, 0.85, 0.90, 0.95)
DEFAULT_TARGET = 0.90


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    sensitivity: float
    specificity: float
    ppv: float | None
    npv: float | None
    tp: int
    fp: int
    tn: int
    fn: int

    def as_dict(self) -> dict:
        return asdict(self)


def ratio(numerator, denominator) -> np.ndarray:
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan),
                     where=denominator > 0)


def check_binary_truth(truth: np.ndarray, what: str) -> None:
    present = set(np.unique(truth).tolist())
    if present != {0, 1}:
        only = "malignant" if present == {1} else "benign"
        raise ValueError(f"{what} holds only {only} cases; sensitivity and specificity need both. "
                         "Re-split with more data per class.")


def sweep(scores: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """Sensitivity, specificity, PPV and NPV at every candidate threshold (ascending)."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, int)
    thresholds = np.union1d(np.linspace(0.0, 1.0, 1001), scores)
    positives, negatives = np.sort(scores[truth == 1]), np.sort(scores[truth == 0])
    tp = len(positives) - np.searchsorted(positives, thresholds, side="left")
    fp = len(negatives) - np.searchsorted(negatives, thresholds, side="left")
    fn, tn = len(positives) - tp, len(negatives) - fp
    return pd.DataFrame({
        "threshold": thresholds, "sensitivity": ratio(tp, tp + fn), "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp), "npv": ratio(tn, tn + fn), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
    })


def point(row: pd.Series) -> OperatingPoint:
    def optional(value) -> float | None:
        return None if pd.isna(value) else float(value)

    return OperatingPoint(float(row.threshold), float(row.sensitivity), float(row.specificity),
                          optional(row.ppv), optional(row.npv), int(row.tp), int(row.fp),
                          int(row.tn), int(row.fn))


def best_row(table: pd.DataFrame, key: pd.Series) -> pd.Series:
    """The row maximising ``key``; ties go to higher sensitivity, then the higher threshold."""
    ranked = table.assign(_key=key).sort_values(["_key", "sensitivity", "threshold"], kind="stable")
    return ranked.iloc[-1]


def point_for_sensitivity(table: pd.DataFrame, target: float) -> OperatingPoint:
    """The highest-specificity threshold whose sensitivity reaches ``target``."""
    if not 0 < target <= 1:
        raise ValueError(f"--target-sensitivity must be in (0, 1]; got {target}.")
    reaching = table[table["sensitivity"] >= target - 1e-12]
    chosen = best_row(reaching, reaching["specificity"])
    if chosen.specificity == 0:
        raise ValueError(
            f"A sensitivity of {target:.2f} is only reached by calling every validation image "
            "malignant (specificity 0). Lower --target-sensitivity or train a better model."
        )
    return point(chosen)


def youden_point(table: pd.DataFrame) -> OperatingPoint:
    """The threshold maximising Youden's J = sensitivity + specificity - 1."""
    return point(best_row(table, table["sensitivity"] + table["specificity"] - 1))


def load_validation_scores(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Malignant scores and binary truth from ``val_probs.npz``, plus the task."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; it is written by scripts/03_train.py at the end of "
                                "a run. Pass the run folder with --run-dir.")
    with np.load(path) as saved:
        task = str(saved["task"])
        scores = malignant_score(saved["probabilities"], task)
        truth = malignant_of_labels(saved["labels"], task)
    check_binary_truth(truth, f"The validation set in {path}")
    return scores, truth, task


def score_description(task: str) -> str:
    if task == "binary":
        return "predicted probability of malignancy"
    return f"summed predicted probability of {', '.join(sorted(MALIGNANT))}"


def tune_threshold(scores: np.ndarray, truth: np.ndarray, target: float = DEFAULT_TARGET) -> dict:
    """The chosen operating point and the table of standard ones, as written to threshold.json."""
    check_binary_truth(np.asarray(truth), "The validation set")
    table = sweep(scores, truth)
    chosen = point_for_sensitivity(table, target)
    points = {}
    for level in TARGET_SENSITIVITIES:
        try:
            points[f"sensitivity_{level:.2f}"] = point_for_sensitivity(table, level).as_dict()
        except ValueError as error:
            points[f"sensitivity_{level:.2f}"] = {"unreachable": str(error)}
    points["youden_j"] = youden_point(table).as_dict()
    return {"target_sensitivity": target, **chosen.as_dict(), "operating_points": points,
            "thresholds_swept": int(len(table))}


def tuned_threshold(run: RunLayout) -> float | None:
    """The run's tuned threshold, or None (with a warning) when it has not been tuned."""
    if run.threshold.is_file():
        return float(read_json(run.threshold, "Threshold file")["threshold"])
    log.warning("No %s: labelling at threshold 0.5. Run scripts/04_tune_threshold.py for the "
                "tuned operating point.", run.threshold)
    return None


def tune_run(run: RunLayout, target: float = DEFAULT_TARGET, force: bool = False) -> dict:
    """Tune a run's threshold from its ``val_probs.npz``; writes threshold.json and two plots."""
    refuse_overwrite(run.threshold, force, "Threshold file")
    scores, truth, task = load_validation_scores(run.val_probs)
    result = tune_threshold(scores, truth, target)
    result.update({"task": task, "score": score_description(task), "source": str(run.val_probs),
                   "validation_images": int(len(truth)), "validation_malignant": int(truth.sum()),
                   "validation_roc_auc": float(roc_auc_score(truth, scores))})
    false_positive_rate, true_positive_rate, _ = roc_curve(truth, scores)
    points = {name: (p["specificity"], p["sensitivity"])
              for name, p in result["operating_points"].items() if "specificity" in p}
    save_figure(roc_figure(false_positive_rate, true_positive_rate, result["validation_roc_auc"], points),
                run.plots_dir / "roc_validation.png")
    table = sweep(scores, truth)
    save_figure(threshold_figure(table["threshold"], table["sensitivity"], table["specificity"],
                                 result["threshold"]), run.plots_dir / "threshold_sweep.png")
    write_json_atomic(run.threshold, result)
    return result
