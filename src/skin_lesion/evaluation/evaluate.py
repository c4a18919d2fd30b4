"""Test-set evaluation: metrics with lesion-level bootstrap intervals, calibration, TTA, plots.

The test split is predicted once with the run's best model. Scores are the calibrated ones
(``calibration.json``, fitted on validation); calibration error and Brier score are reported
before and after calibration. Confidence intervals resample lesions (``skin_lesion.metrics``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics

from skin_lesion.data.split import split_grouping
from skin_lesion.defaults import BOOTSTRAP_SAMPLES, PREDICTION_BATCH, UNTUNED_THRESHOLD
from skin_lesion.evaluation.ensemble_report import compare_with_members
from skin_lesion.evaluation.model_card import write_model_card
from skin_lesion.io_utils import read_json, refuse_overwrite, write_json_atomic, write_text_atomic
from skin_lesion.layout import RunLayout
from skin_lesion.metrics import (calibration_bins, cluster_bootstrap, expected_calibration_error, macro_roc_auc,
                                 rates_at, ranking_metrics, score_calibration, with_intervals)
from skin_lesion.plots import (confusion_matrix_figure, per_class_roc_figure, precision_recall_figure,
                               reliability_figure, roc_figure, save_figure, score_histogram_figure)
from skin_lesion.models.ood import OOD_COLUMNS
from skin_lesion.serving.predictor import Predictor, load_predictor
from skin_lesion.serving.splits import run_split_images, score_split
from skin_lesion.tasks import BENIGN_MALIGNANT, CLASS_METRICS, SCREENING_METRICS, Task

log = logging.getLogger(__name__)


def aggregate_lesions(table: pd.DataFrame, probabilities: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Mean probability over each lesion's images; one row per lesion with the lesion's fields
    (diagnosis, label ...), its number of images and their ids (``image_ids``, ``;``-separated)."""
    frame = pd.DataFrame(np.asarray(probabilities).reshape(len(table), -1))
    frame["lesion_id"] = table["lesion_id"].to_numpy()
    means = frame.groupby("lesion_id", sort=False).mean()
    members = table.groupby("lesion_id", sort=False)["image_id"]
    lesions = (table.drop_duplicates("lesion_id").set_index("lesion_id").loc[means.index]
               .drop(columns=["image_id", "image_path"], errors="ignore")
               .assign(images=members.size(), image_ids=members.agg(";".join)).reset_index())
    values = means.to_numpy()
    return lesions, values[:, 0] if values.shape[1] == 1 else values


def prediction_table(cases: pd.DataFrame, probabilities: np.ndarray, predictor: Predictor,
                     thresholds: dict[str, float], top_classes: np.ndarray | None) -> pd.DataFrame:
    """One row per scored image (or lesion): its identity, truth, calibrated scores, the
    multi-class top class and the label at each threshold."""
    identity = ["image_id", "lesion_id", "dx", "label", "image_path", *OOD_COLUMNS] if "image_id" in cases else \
        ["lesion_id", "dx", "label", "images", "image_ids"]
    predictions = cases[[column for column in identity if column in cases]].copy()
    predictions["malignant_score"] = predictor.scores(probabilities)
    if not predictor.task.is_binary:
        for index, name in enumerate(predictor.class_names):
            predictions[f"prob_{name}"] = probabilities[:, index]
        predictions["top_class"] = np.asarray(predictor.class_names)[top_classes]
    for name, threshold in thresholds.items():
        predictions[f"malignant@{name}"] = (predictions["malignant_score"] >= threshold).astype(int)
    return predictions


def ood_summary(predictor: Predictor, table: pd.DataFrame) -> dict | None:
    """How many test images the out-of-distribution flag raised (None for models without it)."""
    if predictor.ood is None:
        return None
    return {"flagged": int(table["out_of_distribution"].sum()), "images": int(len(table)),
            "share": float(table["out_of_distribution"].mean()), "threshold": predictor.ood.threshold,
            "method": predictor.ood.record.get("method", "")}


def calibration_quality(truth: np.ndarray, probabilities: np.ndarray, labels: np.ndarray,
                        task: Task, top_classes: np.ndarray | None = None) -> dict[str, float]:
    """ECE and Brier score of the malignant score; with several classes also the ECE of the top
    class's probability (is the decided class right as often as its probability says?)."""
    quality = score_calibration(truth, task.malignant_score(probabilities))
    if not task.is_binary:
        top = probabilities.argmax(axis=1) if top_classes is None else np.asarray(top_classes)
        quality["top_class_ece"] = expected_calibration_error(
            top == labels, probabilities[np.arange(len(top)), top])
    return quality


def screening_metrics(truth: np.ndarray, score: np.ndarray, thresholds: dict[str, float],
                      groups: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """ROC-AUC, PR-AUC and the rates at each threshold of a malignant score, with 95 % intervals
    that resample ``groups`` (lesions or patients)."""
    def screening(indices: np.ndarray) -> dict[str, float]:
        values = ranking_metrics(truth[indices], score[indices])
        for name, threshold in thresholds.items():
            values.update({f"{key}@{name}": value for key, value in
                           rates_at(truth[indices], score[indices], threshold).items()})
        return values

    return with_intervals(screening(np.arange(len(truth))), cluster_bootstrap(screening, groups, samples, seed))


def evaluate_predictions(labels: np.ndarray, probabilities: np.ndarray, lesion_ids: np.ndarray,
                         task: Task, thresholds: dict[str, float], raw_probabilities: np.ndarray | None = None,
                         samples: int = BOOTSTRAP_SAMPLES, seed: int = 0,
                         top_classes: np.ndarray | None = None) -> dict:
    """All test metrics for one set of (calibrated) predictions of images or lesions.

    ``thresholds`` names the operating points to report (e.g. tuned and 0.5);
    ``raw_probabilities`` are the uncalibrated outputs, for the calibration comparison;
    ``top_classes`` the multi-class decisions (default: the argmax, the decision of uncalibrated and
    temperature-scaled models); the uncalibrated outputs are judged by their own argmax.
    """
    labels = np.asarray(labels)
    truth = task.malignant_of_labels(labels)
    score = task.malignant_score(probabilities)
    if not task.is_binary and top_classes is None:
        top_classes = probabilities.argmax(axis=1)

    raw = probabilities if raw_probabilities is None else raw_probabilities
    result = {
        "cases": int(len(labels)), "malignant": int(truth.sum()),
        "thresholds": thresholds,
        SCREENING_METRICS: screening_metrics(truth, score, thresholds, lesion_ids, samples, seed),
        "confusion_matrix": {name: metrics.confusion_matrix(truth, (score >= t).astype(int), labels=[0, 1]).tolist()
                             for name, t in thresholds.items()},
        "calibration": {"calibrated": calibration_quality(truth, probabilities, labels, task, top_classes),
                        "uncalibrated": calibration_quality(truth, raw, labels, task)},
    }
    if not task.is_binary:
        result.update(multiclass_metrics(labels, probabilities, np.asarray(top_classes), task.classes,
                                         lesion_ids, samples, seed))
    return result


def multiclass_metrics(labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray,
                       class_names: tuple[str, ...], lesion_ids: np.ndarray, samples: int, seed: int) -> dict:
    """Accuracy, balanced accuracy and macro ROC-AUC (with intervals), per-class report and the
    class confusion matrix of the ``predicted`` top classes."""
    names = list(class_names)

    def summary(indices: np.ndarray) -> dict[str, float]:
        return {"accuracy": metrics.accuracy_score(labels[indices], predicted[indices]),
                "balanced_accuracy": metrics.balanced_accuracy_score(labels[indices], predicted[indices]),
                "macro_roc_auc": macro_roc_auc(labels[indices], probabilities[indices])}

    everything = np.arange(len(labels))
    return {
        CLASS_METRICS: with_intervals(summary(everything), cluster_bootstrap(summary, lesion_ids, samples, seed)),
        "per_class": metrics.classification_report(labels, predicted, labels=range(len(names)),
                                                   target_names=names, output_dict=True, zero_division=0),
        "class_confusion_matrix": metrics.confusion_matrix(labels, predicted, labels=range(len(names))).tolist(),
    }


def plot_test_results(run: RunLayout, tag: str, result: dict, labels: np.ndarray,
                      probabilities: np.ndarray, raw: np.ndarray, task: Task) -> None:
    """ROC and precision-recall curves with the operating points, confusion matrices, score
    histograms, per-class ROC curves (several classes) and the reliability diagram."""
    thresholds, binary = result["thresholds"], result[SCREENING_METRICS]
    truth = task.malignant_of_labels(labels)
    score = task.malignant_score(probabilities)
    level = f"test split, {result['level']} level"

    def rate(key: str, name: str) -> float:
        return binary[f"{key}@{name}"]["value"] or 0.0

    points = {f"threshold {name} ({t:.3f})": (rate("specificity", name), rate("sensitivity", name))
              for name, t in thresholds.items()}
    false_positive_rate, true_positive_rate, _ = metrics.roc_curve(truth, score)
    save_figure(roc_figure(false_positive_rate, true_positive_rate, binary["roc_auc"]["value"], points,
                           f"ROC curve, malignant vs benign ({level})"), run.test_plot("roc", tag))
    precision, recall, _ = metrics.precision_recall_curve(truth, score)
    pr_points = {f"threshold {name} ({t:.3f})": (rate("sensitivity", name), rate("ppv", name))
                 for name, t in thresholds.items()}
    save_figure(precision_recall_figure(recall, precision, binary["pr_auc"]["value"], truth.mean(),
                                        pr_points, f"Precision-recall curve ({level})"),
                run.test_plot("precision_recall", tag))
    first = next(iter(thresholds))
    save_figure(confusion_matrix_figure(np.array(result["confusion_matrix"][first]), list(BENIGN_MALIGNANT),
                                        f"Confusion matrix at threshold {first} = {thresholds[first]:.3f} ({level})"),
                run.test_plot("confusion_matrix", tag))
    groups = np.array(BENIGN_MALIGNANT)[truth]
    if not task.is_binary:
        names = task.classes
        groups = np.array([names[label] for label in labels])
        save_figure(confusion_matrix_figure(np.array(result["class_confusion_matrix"]), list(names),
                                            f"Confusion matrix, top class ({level})"),
                    run.test_plot("confusion_matrix_classes", tag))
        curves = {}
        for index, name in enumerate(names):
            if len(np.unique(labels == index)) == 2:
                fpr, tpr, _ = metrics.roc_curve(labels == index, probabilities[:, index])
                curves[name] = (fpr, tpr, metrics.roc_auc_score(labels == index, probabilities[:, index]))
        save_figure(per_class_roc_figure(curves, f"ROC curve per diagnosis, one vs rest ({level})"),
                    run.test_plot("roc_per_class", tag))
    save_figure(score_histogram_figure(score, groups, thresholds,
                                       f"Malignant score by true class ({level})"),
                run.test_plot("score_histogram", tag))
    curves = {}
    for name, values in (("uncalibrated", raw), ("calibrated", probabilities)):
        clipped = np.clip(task.malignant_score(values), 0, 1)
        curves[name] = (calibration_bins(truth, clipped), result["calibration"][name]["malignant_score_ece"])
    save_figure(reliability_figure(curves, f"Reliability of the malignant score ({level})"),
                run.test_plot("reliability", tag))


def operating_points(predictor: Predictor) -> dict[str, float]:
    """The thresholds results are reported at: the tuned one (if any) and 0.5."""
    untuned = {f"{UNTUNED_THRESHOLD}": UNTUNED_THRESHOLD}
    return {"tuned": predictor.threshold, **untuned} if predictor.threshold_record else untuned


def evaluate_run(run: RunLayout, tta: bool = False, lesion_level: bool = False,
                 bootstrap: int = BOOTSTRAP_SAMPLES, batch_size: int = PREDICTION_BATCH, force: bool = False) -> dict:
    """Predict the test split once with the run's best model and write metrics, predictions
    and plots into the run folder (file names tagged ``_lesion``/``_tta`` for the variants)."""
    tag = ("_lesion" if lesion_level else "") + ("_tta" if tta else "")
    for path in (run.test_metrics(tag), run.test_predictions(tag)):
        refuse_overwrite(path, force, "Evaluation result")
    predictor = load_predictor(run)
    task = predictor.task
    thresholds = operating_points(predictor)

    images = run_split_images(run, "test", predictor.img_size)
    log.info("Scoring %d test images at %dx%d, the model's input size%s", len(images.table),
             predictor.img_size, predictor.img_size, ", averaged over 4 flips" if tta else "")
    scored = score_split(predictor, images, batch_size, tta)
    raw, probabilities = scored.raw, scored.probabilities
    table = images.table.assign(label=task.labels(images.table["dx"]))
    if predictor.ood:
        table = table.assign(out_of_distribution=[bool(r) for r in scored.ood_reasons],
                             ood_distance=scored.distances, ood_reason=scored.ood_reasons)

    cases, case_probabilities, case_raw = table, probabilities, raw
    if lesion_level:
        cases, case_probabilities = aggregate_lesions(table, probabilities)
        case_raw = aggregate_lesions(table, raw)[1]
    top_classes = None if task.is_binary else predictor.top_classes(case_probabilities)
    predictions = prediction_table(cases, case_probabilities, predictor, thresholds, top_classes)
    split_file = read_json(run.config, "Training config")["split_file"]
    grouped_by = split_grouping(Path(split_file))  # intervals resample what the split kept together
    result = evaluate_predictions(cases["label"].to_numpy(), case_probabilities, cases[grouped_by].to_numpy(),
                                  task, thresholds, case_raw, samples=bootstrap, top_classes=top_classes)
    result.update({"level": "lesion" if lesion_level else "image", "tta": tta,
                   "model": str(run.best_model), "split_file": split_file, "task": task.kind,
                   "img_size": predictor.img_size, "calibration_method": predictor.calibration.method,
                   "threshold_source": str(run.threshold) if predictor.threshold_record else None,
                   "excluded_images": images.unusable, "bootstrap_samples": bootstrap,
                   "images": int(len(table)), "lesions": int(table["lesion_id"].nunique()),
                   "out_of_distribution": ood_summary(predictor, table)})

    members = read_json(run.config, "Training config").get("members")
    if members and not tag:  # an ensemble, against its members on the same test images
        result["ensemble_comparison"] = compare_with_members(members, predictor, table, probabilities,
                                                             grouped_by, bootstrap)
    if result["out_of_distribution"]:
        log.info("Out of distribution: %d of %d test images flagged (%.1f %%; the threshold flags "
                 "%.1f %% of validation images)", result["out_of_distribution"]["flagged"], len(table),
                 100 * result["out_of_distribution"]["share"], 100 * predictor.ood.record["flagged"]["val"])
    plot_test_results(run, tag, result, cases["label"].to_numpy(), case_probabilities, case_raw, task)
    result["metrics_file"] = str(run.test_metrics(tag))
    write_text_atomic(run.test_predictions(tag), predictions.to_csv(index=False))
    write_json_atomic(run.test_metrics(tag), result)
    if not tag:  # the card reports the plain image-level evaluation
        log.info("Model card: %s", write_model_card(run))
    return result
