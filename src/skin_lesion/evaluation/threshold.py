"""Choosing the operating point of a screening model on validation data.

A case counts as positive (malignant) when its calibrated score is at or above the threshold.
Thresholds are swept over a grid of 1,001 values from 0 to 1 plus every distinct score; the
chosen one reaches the target sensitivity with the highest specificity (ties: higher
sensitivity, then the higher threshold). Only ``val_probs.npz``, ``calibration.json`` and the
run record (for the task) are read: the test split stays untouched until evaluation.

Every operating point carries the counts it rests on and 95 % Wilson score intervals for its
sensitivity and specificity: 1.000 measured on 19 malignant images means anything from 0.83 up.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import roc_curve

from skin_lesion.data.records import task_of_record
from skin_lesion.defaults import REPORTED_SENSITIVITIES, TARGET_SENSITIVITY
from skin_lesion.errors import ConfigError, DatasetError, MissingFileError
from skin_lesion.formatting import interval_text
from skin_lesion.io_utils import read_json, refuse_overwrite, write_json_atomic
from skin_lesion.layout import RunLayout
from skin_lesion.metrics import ranking_metrics, sweep
from skin_lesion.models.calibration import Calibration
from skin_lesion.plots import roc_figure, save_figure, threshold_figure
from skin_lesion.tasks import Task

log = logging.getLogger(__name__)

GRID = np.linspace(0.0, 1.0, 1001)


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
    malignant: int  # validation images the rates are measured on
    benign: int
    sensitivity_ci95: tuple[float, float]
    specificity_ci95: tuple[float, float]

    def as_dict(self) -> dict:
        return asdict(self)


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion: unlike the normal approximation it stays
    within [0, 1] and keeps its width at 0 or ``trials`` successes, where small validation sets are."""
    interval = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def check_binary_truth(truth: np.ndarray, what: str) -> None:
    present = set(np.unique(truth).tolist())
    if present != {0, 1}:
        only = "malignant" if present == {1} else "benign"
        raise DatasetError(f"{what} holds only {only} cases; sensitivity and specificity need both. "
                           "Re-split with more data per class.")


def candidate_table(scores: np.ndarray, truth: np.ndarray) -> pd.DataFrame:
    """Rates at every candidate threshold: the grid and every distinct score."""
    return sweep(truth, scores, np.union1d(GRID, np.asarray(scores, float)))


def point(row: pd.Series) -> OperatingPoint:
    def optional(value) -> float | None:
        return None if pd.isna(value) else float(value)

    tp, fp, tn, fn = int(row.tp), int(row.fp), int(row.tn), int(row.fn)
    return OperatingPoint(float(row.threshold), float(row.sensitivity), float(row.specificity),
                          optional(row.ppv), optional(row.npv), tp, fp, tn, fn, tp + fn, tn + fp,
                          wilson_interval(tp, tp + fn), wilson_interval(tn, tn + fp))


def best_row(table: pd.DataFrame, key: pd.Series) -> pd.Series:
    """The row maximising ``key``; ties go to higher sensitivity, then the higher threshold."""
    ranked = table.assign(_key=key).sort_values(["_key", "sensitivity", "threshold"], kind="stable")
    return ranked.iloc[-1]


def point_for_sensitivity(table: pd.DataFrame, target: float) -> OperatingPoint:
    """The highest-specificity threshold whose sensitivity reaches ``target``."""
    if not 0 < target <= 1:
        raise ConfigError(f"--target-sensitivity must be in (0, 1]; got {target}.")
    reaching = table[table["sensitivity"] >= target - 1e-12]
    chosen = best_row(reaching, reaching["specificity"])
    if chosen.specificity == 0:
        raise ConfigError(
            f"A sensitivity of {target:.2f} is only reached by calling every validation image "
            "malignant (specificity 0). Lower --target-sensitivity or train a better model."
        )
    return point(chosen)


def youden_point(table: pd.DataFrame) -> OperatingPoint:
    """The threshold maximising Youden's J = sensitivity + specificity - 1."""
    return point(best_row(table, table["sensitivity"] + table["specificity"] - 1))


def load_validation_scores(run: RunLayout) -> tuple[np.ndarray, np.ndarray, Task]:
    """Calibrated malignant scores and binary truth from ``val_probs.npz``, plus the run's task."""
    if not run.val_probs.is_file():
        raise MissingFileError(f"{run.val_probs} not found; it is written by scripts/03_train.py at "
                               "the end of a run. Pass the run folder with --run-dir.")
    task = task_of_record(read_json(run.config, "Training config"), str(run.config))
    with np.load(run.val_probs) as saved:
        probabilities = Calibration.from_file(run.calibration).apply(saved["probabilities"])
        scores = task.malignant_score(probabilities)
        truth = task.malignant_of_labels(saved["labels"])
    check_binary_truth(truth, f"The validation set in {run.val_probs}")
    return scores, truth, task


def tune_threshold(scores: np.ndarray, truth: np.ndarray, target: float = TARGET_SENSITIVITY) -> dict:
    """The chosen operating point and the table of standard ones, as written to threshold.json."""
    check_binary_truth(np.asarray(truth), "The validation set")
    table = candidate_table(scores, truth)
    chosen = point_for_sensitivity(table, target)
    points = {}
    for level in REPORTED_SENSITIVITIES:
        try:
            points[f"sensitivity_{level:.2f}"] = point_for_sensitivity(table, level).as_dict()
        except ConfigError as error:
            points[f"sensitivity_{level:.2f}"] = {"unreachable": str(error)}
    points["youden_j"] = youden_point(table).as_dict()
    return {"target_sensitivity": target, **chosen.as_dict(), "interval_method": "wilson",
            "operating_points": points, "thresholds_swept": int(len(table))}


def validation_rates(record: dict) -> str:
    """``sensitivity 1.000 (95 % CI 0.83–1.00), specificity 1.000 (95 % CI 0.94–1.00) on 19
    malignant / 59 benign validation images``, from threshold.json: the rates with what they
    rest on. A file tuned before intervals were recorded says how to add them."""
    if "sensitivity_ci95" not in record:
        return (f"sensitivity {record['sensitivity']:.3f}, specificity {record['specificity']:.3f} on "
                "validation images (counts and intervals not recorded: re-run scripts/04_tune_threshold.py --force)")
    return (f"sensitivity {record['sensitivity']:.3f} ({interval_text(record['sensitivity_ci95'])}), "
            f"specificity {record['specificity']:.3f} ({interval_text(record['specificity_ci95'])}) "
            f"on {record['malignant']} malignant / {record['benign']} benign validation images")


def tune_run(run: RunLayout, target: float = TARGET_SENSITIVITY, force: bool = False) -> dict:
    """Tune a run's threshold from its validation predictions; writes threshold.json and plots."""
    refuse_overwrite(run.threshold, force, "Threshold file")
    scores, truth, task = load_validation_scores(run)
    result = tune_threshold(scores, truth, target)
    calibration = Calibration.from_file(run.calibration)
    result.update({"task": task.kind, "score": task.score_description(calibration.fitted),
                   "source": str(run.val_probs), "calibration": calibration.method,
                   "validation_images": int(len(truth)), "validation_malignant": int(truth.sum()),
                   "validation_roc_auc": ranking_metrics(truth, scores)["roc_auc"]})
    false_positive_rate, true_positive_rate, _ = roc_curve(truth, scores)
    points = {f"{name} ({p['threshold']:.3f})": (p["specificity"], p["sensitivity"])
              for name, p in result["operating_points"].items() if "specificity" in p}
    save_figure(roc_figure(false_positive_rate, true_positive_rate, result["validation_roc_auc"],
                           points, "ROC curve, validation split"), run.plot("roc_validation"))
    table = candidate_table(scores, truth)
    save_figure(threshold_figure(table["threshold"], table["sensitivity"], table["specificity"],
                                 result["threshold"], target), run.plot("threshold_sweep"))
    write_json_atomic(run.threshold, result)
    return result
