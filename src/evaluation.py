"""Test-set evaluation: metrics with lesion-level bootstrap intervals, calibration, TTA.

Confidence intervals resample *lesions* with replacement (all images of a drawn lesion come
along), because images of one lesion are not independent: resampling images would give
intervals that are too narrow. Metrics themselves come from scikit-learn.
"""
from __future__ import annotations

from typing import Callable

import logging

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from sklearn import metrics

from pathlib import Path

from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from src.io_utils import read_json, refuse_overwrite, write_json_atomic, write_text_atomic
from src.labels import class_names, labels_of, malignant_of_labels, malignant_score
from src.layout import RunLayout
from src.model import load_for_prediction
from src.pipeline import SplitImages, load_split_images, make_dataset
from src.plots import confusion_matrix_figure, reliability_figure, roc_figure, save_figure
from src.split import read_split
from src.threshold import tuned_threshold

log = logging.getLogger(__name__)

BOOTSTRAP_SAMPLES = 1000
CALIBRATION_BINS = 15
FLIPS = ("none", "horizontal", "vertical", "both")


def flipped(batches: tf.data.Dataset, flip: str) -> tf.data.Dataset:
    """``batches`` mirrored left-right, top-bottom, both or not at all."""
    if flip in ("horizontal", "both"):
        batches = batches.map(tf.image.flip_left_right)
    if flip in ("vertical", "both"):
        batches = batches.map(tf.image.flip_up_down)
    return batches


def predict_images(model: keras.Model, images: SplitImages, batch_size: int,
                   tta: bool = False) -> np.ndarray:
    """Model outputs for a split's images, in table order; with ``tta`` the mean over flips."""
    dataset = make_dataset(images, np.zeros((len(images.rows), 1)), batch_size, training=False)
    batches = dataset.map(lambda pixels, _targets: pixels)
    flips = FLIPS if tta else FLIPS[:1]
    return np.mean([model.predict(flipped(batches, flip), verbose=0) for flip in flips], axis=0)


def aggregate_lesions(table: pd.DataFrame, probabilities: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Mean probability over each lesion's images; one row per lesion (first image's fields)."""
    frame = pd.DataFrame(np.asarray(probabilities).reshape(len(table), -1))
    frame["lesion_id"] = table["lesion_id"].to_numpy()
    means = frame.groupby("lesion_id", sort=False).mean()
    lesions = table.drop_duplicates("lesion_id").set_index("lesion_id").loc[means.index].reset_index()
    values = means.to_numpy()
    return lesions, values[:, 0] if values.shape[1] == 1 else values


def rates_at(truth: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Screening metrics of ``score >= threshold`` (NaN where undefined)."""
    predicted = (score >= threshold).astype(int)
    (tn, fp), (fn, tp) = metrics.confusion_matrix(truth, predicted, labels=[0, 1])

    def safe(a, b):
        return a / b if b else float("nan")

    return {
        "sensitivity": safe(tp, tp + fn), "specificity": safe(tn, tn + fp),
        "ppv": safe(tp, tp + fp), "npv": safe(tn, tn + fn),
        "accuracy": safe(tp + tn, tp + tn + fp + fn),
        "balanced_accuracy": metrics.balanced_accuracy_score(truth, predicted),
    }


def ranking_metrics(truth: np.ndarray, score: np.ndarray) -> dict[str, float]:
    if len(np.unique(truth)) < 2:
        return {"roc_auc": float("nan"), "pr_auc": float("nan")}
    return {"roc_auc": metrics.roc_auc_score(truth, score),
            "pr_auc": metrics.average_precision_score(truth, score)}


def cluster_bootstrap(metric: Callable[[np.ndarray], dict[str, float]], clusters: np.ndarray,
                      samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                      level: float = 0.95) -> dict[str, list[float]]:
    """Percentile intervals of every value ``metric(indices)`` returns, resampling clusters.

    Each replicate draws as many clusters as there are, with replacement, and passes the
    indices of all their members to ``metric``.
    """
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


def expected_calibration_error(truth: np.ndarray, confidence: np.ndarray,
                               bins: int = CALIBRATION_BINS) -> float:
    """Weighted mean gap between confidence and observed frequency over equal-width bins."""
    truth, confidence = np.asarray(truth, float), np.asarray(confidence, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            error += inside.mean() * abs(confidence[inside].mean() - truth[inside].mean())
    return float(error)


def with_intervals(point: dict[str, float], intervals: dict[str, list[float]]) -> dict:
    return {key: {"value": None if np.isnan(value) else float(value),
                  "ci95": intervals.get(key)} for key, value in point.items()}


def evaluate_predictions(labels: np.ndarray, probabilities: np.ndarray, lesion_ids: np.ndarray,
                         task: str, thresholds: dict[str, float],
                         samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """All test metrics for one set of predictions (images or lesions).

    ``thresholds`` names the operating points to report (e.g. tuned and 0.5).
    """
    labels = np.asarray(labels)
    truth = malignant_of_labels(labels, task)
    score = malignant_score(probabilities, task)

    def screening(indices: np.ndarray) -> dict[str, float]:
        values = ranking_metrics(truth[indices], score[indices])
        for name, threshold in thresholds.items():
            values.update({f"{key}@{name}": value for key, value in
                           rates_at(truth[indices], score[indices], threshold).items()})
        return values

    everything = np.arange(len(labels))
    result = {
        "cases": int(len(labels)), "malignant": int(truth.sum()),
        "thresholds": thresholds,
        "binary": with_intervals(screening(everything), cluster_bootstrap(screening, lesion_ids, samples, seed)),
        "confusion_matrix": {name: metrics.confusion_matrix(truth, (score >= t).astype(int), labels=[0, 1]).tolist()
                             for name, t in thresholds.items()},
        "calibration": {"malignant_score_ece": expected_calibration_error(truth, np.clip(score, 0, 1))},
    }
    if task == "multiclass":
        names = list(class_names(task))
        predicted = np.asarray(probabilities).argmax(axis=1)

        def multiclass(indices: np.ndarray) -> dict[str, float]:
            present = np.unique(labels[indices])
            macro = (metrics.roc_auc_score(labels[indices], probabilities[indices], multi_class="ovr",
                                           average="macro", labels=range(len(names)))
                     if len(present) == len(names) else float("nan"))
            return {"accuracy": metrics.accuracy_score(labels[indices], predicted[indices]),
                    "balanced_accuracy": metrics.balanced_accuracy_score(labels[indices], predicted[indices]),
                    "macro_roc_auc": macro}

        result["multiclass"] = with_intervals(multiclass(everything),
                                              cluster_bootstrap(multiclass, lesion_ids, samples, seed))
        result["per_class"] = metrics.classification_report(labels, predicted, labels=range(len(names)),
                                                            target_names=names, output_dict=True,
                                                            zero_division=0)
        result["confusion_matrix"]["classes"] = metrics.confusion_matrix(
            labels, predicted, labels=range(len(names))).tolist()
        result["calibration"]["top_class_ece"] = expected_calibration_error(
            predicted == labels, np.asarray(probabilities).max(axis=1))
    return result


def plot_test_results(run: RunLayout, tag: str, result: dict, labels: np.ndarray,
                      probabilities: np.ndarray, task: str) -> None:
    """ROC with the operating points, confusion matrices and the reliability diagram."""
    thresholds = result["thresholds"]
    truth = malignant_of_labels(labels, task)
    score = malignant_score(probabilities, task)
    false_positive_rate, true_positive_rate, _ = roc_curve(truth, score)
    binary = result["binary"]
    points = {f"threshold {name}": (binary[f"specificity@{name}"]["value"], binary[f"sensitivity@{name}"]["value"])
              for name in thresholds}
    save_figure(roc_figure(false_positive_rate, true_positive_rate, binary["roc_auc"]["value"], points),
                run.test_plot("roc", tag))
    first = next(iter(thresholds))
    save_figure(confusion_matrix_figure(np.array(result["confusion_matrix"][first]), ["benign", "malignant"],
                                        f"test, threshold {thresholds[first]:.3f}"),
                run.test_plot("confusion_matrix", tag))
    if task == "multiclass":
        save_figure(confusion_matrix_figure(np.array(result["confusion_matrix"]["classes"]),
                                            list(class_names(task)), "test, top class"),
                    run.test_plot("confusion_matrix_classes", tag))
    fraction, mean_predicted = calibration_curve(truth, np.clip(score, 0, 1), n_bins=10)
    save_figure(reliability_figure(mean_predicted, fraction, result["calibration"]["malignant_score_ece"],
                                   "malignant score, test"), run.test_plot("reliability", tag))


def evaluate_run(run: RunLayout, tta: bool = False, lesion_level: bool = False,
                 bootstrap: int = BOOTSTRAP_SAMPLES, batch_size: int = 64, force: bool = False) -> dict:
    """Predict the test split once with the run's best model and write metrics, predictions
    and plots into the run folder (file names tagged ``_lesion``/``_tta`` for the variants)."""
    tag = ("_lesion" if lesion_level else "") + ("_tta" if tta else "")
    for path in (run.test_metrics(tag), run.test_predictions(tag)):
        refuse_overwrite(path, force, "Evaluation result")
    description = read_json(run.config, "Training config")
    task, settings = description["task"], description["settings"]
    tuned = tuned_threshold(run)
    thresholds = {"0.5": 0.5} if tuned is None else {"tuned": tuned, "0.5": 0.5}

    size = (settings["img_size"], settings["img_size"])
    split_file = description["split_file"]
    images = load_split_images(read_split(Path(split_file)), "test", size, Path(settings["cache_dir"]),
                               split_file)
    model = load_for_prediction(run.best_model)
    probabilities = predict_images(model, images, batch_size, tta)
    if task == "binary":
        probabilities = probabilities[:, 0]
    table = images.table.assign(label=labels_of(images.table["dx"], task))

    predictions = table[["image_id", "lesion_id", "dx", "label", "image_path"]].copy()
    predictions["malignant_score"] = malignant_score(probabilities, task)
    if task == "multiclass":
        for index, name in enumerate(class_names(task)):
            predictions[f"prob_{name}"] = probabilities[:, index]
    for name, threshold in thresholds.items():
        predictions[f"malignant@{name}"] = (predictions["malignant_score"] >= threshold).astype(int)

    cases, case_probabilities = table, probabilities
    if lesion_level:
        cases, case_probabilities = aggregate_lesions(table, probabilities)
    result = evaluate_predictions(cases["label"].to_numpy(), case_probabilities, cases["lesion_id"].to_numpy(),
                                  task, thresholds, samples=bootstrap)
    result.update({"level": "lesion" if lesion_level else "image", "tta": tta,
                   "model": str(run.best_model), "split_file": split_file, "task": task,
                   "excluded_images": images.unusable, "bootstrap_samples": bootstrap,
                   "images": int(len(table)), "lesions": int(table["lesion_id"].nunique())})

    plot_test_results(run, tag, result, cases["label"].to_numpy(), case_probabilities, task)
    result["metrics_file"] = str(run.test_metrics(tag))
    write_text_atomic(run.test_predictions(tag), predictions.to_csv(index=False))
    write_json_atomic(run.test_metrics(tag), result)
    return result
