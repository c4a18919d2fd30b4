"""External validation: a run's model scored on every image of another dataset.

Another clinic, another camera, another population: whether a model's figures hold there is
what reviewers ask first. Nothing of the other dataset is split (it is all test data). Its
diagnoses are read in the model's label space through the synonym table
(``skin_lesion.data.datasets.labels``); a diagnosis the model does not know is reported and
counts as malignant or benign by its own dataset's rule. Intervals resample what the dataset
keeps together (lesions, or patients where it names them). Results go to
``RUN/external/<dataset>/``: ``metrics.json``, ``predictions.csv`` and plots; the model card
lists every external result.
"""
from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd
from sklearn import metrics

from skin_lesion.data.dataset import Dataset
from skin_lesion.data.datasets.labels import counterpart
from skin_lesion.defaults import BOOTSTRAP_SAMPLES, PREDICTION_BATCH
from skin_lesion.errors import DatasetError
from skin_lesion.evaluation.evaluate import multiclass_metrics, operating_points, screening_metrics
from skin_lesion.evaluation.model_card import write_model_card
from skin_lesion.io_utils import refuse_overwrite, write_json_atomic, write_text_atomic
from skin_lesion.layout import RunLayout
from skin_lesion.plots import roc_figure, save_figure, score_histogram_figure
from skin_lesion.serving.inference import predict_paths
from skin_lesion.serving.predictor import Predictor, load_predictor
from skin_lesion.tasks import BENIGN_MALIGNANT, SCREENING_METRICS

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.csv"


def dataset_slug(dataset: Dataset) -> str:
    """The folder name of a dataset's results: its label space's name, lower case (``isic-2019``)."""
    return re.sub(r"[^a-z0-9]+", "-", dataset.label_space.name.lower()).strip("-")


def dataset_title(dataset: Dataset) -> str:
    """What the data is, and its layout's label space where that is another name (the synthetic
    sample re-laid as ISIC 2019)."""
    name, space = dataset.provenance.name, dataset.label_space.name
    return name if name == space else f"{name}, as {space}"


def label_mapping(dataset: Dataset, predictor: Predictor) -> dict[str, str | None]:
    """Each of the dataset's diagnoses as the model's code, or None for one it does not know."""
    return {code: counterpart(code, predictor.task.label_space) for code in dataset.label_space.codes}


def malignant_truth(dx: pd.Series, mapping: dict[str, str | None], dataset: Dataset,
                    predictor: Predictor) -> np.ndarray:
    """1 for malignant: by the model's rule where it knows the diagnosis, else by the dataset's."""
    model_space, own = predictor.task.label_space, dataset.label_space
    return np.array([code_of in model_space.malignant if (code_of := mapping[code]) else code in own.malignant
                     for code in dx], dtype=np.int64)


def scored_rows(predictor: Predictor, table: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """06_infer.py's rows for every image of the table, joined to its truth columns."""
    rows = pd.DataFrame(list(predict_paths(predictor, table["image_path"].tolist(), table, batch_size)))
    return pd.concat([table.reset_index(drop=True), rows.drop(columns="path")], axis=1)


def class_results(scored: pd.DataFrame, mapping: dict, predictor: Predictor, groups: np.ndarray,
                  samples: int) -> dict:
    """Accuracy, balanced accuracy and the per-class report over the images whose diagnosis the
    model knows (multi-class models only)."""
    known = scored["dx"].map(mapping).notna().to_numpy()
    names = predictor.class_names
    if predictor.task.is_binary or not known.any():
        return {}
    part = scored[known]
    labels = np.array([names.index(mapping[code]) for code in part["dx"]])
    probabilities = part[[f"prob_{name}" for name in names]].to_numpy(float)
    predicted = np.array([names.index(name) for name in part["top_class"]])
    return {"mapped_images": int(known.sum()),
            **multiclass_metrics(labels, probabilities, predicted, tuple(names), groups[known], samples, 0)}


def plot_external(out_dir, truth: np.ndarray, score: np.ndarray, result: dict, title: str) -> None:
    false_positive_rate, true_positive_rate, _ = metrics.roc_curve(truth, score)
    screening = result[SCREENING_METRICS]
    points = {f"threshold {name} ({t:.3f})": (screening[f"specificity@{name}"]["value"] or 0.0,
                                               screening[f"sensitivity@{name}"]["value"] or 0.0)
              for name, t in result["thresholds"].items()}
    save_figure(roc_figure(false_positive_rate, true_positive_rate, screening["roc_auc"]["value"], points,
                           f"ROC curve, malignant vs benign ({title})"), out_dir / "roc.png")
    save_figure(score_histogram_figure(score, np.array(BENIGN_MALIGNANT)[truth], result["thresholds"],
                                       f"Malignant score by true class ({title})"), out_dir / "score_histogram.png")


def validate_externally(run: RunLayout, dataset: Dataset, bootstrap: int = BOOTSTRAP_SAMPLES,
                        batch_size: int = PREDICTION_BATCH, force: bool = False) -> dict:
    """Score every image of ``dataset`` with the run's model; write and return the results."""
    out_dir = run.external_dir(dataset_slug(dataset))
    refuse_overwrite(out_dir / METRICS_FILE, force, "External validation")
    predictor = load_predictor(run)
    mapping = label_mapping(dataset, predictor)
    unknown = {code: int((dataset.table["dx"] == code).sum()) for code, mine in mapping.items() if mine is None}
    if unknown:
        name = dataset.label_space.name
        log.warning("The model does not know %s of %s; they count by %s's own rule (malignant: %s).",
                    ", ".join(f"{code} ({count} images)" for code, count in unknown.items()), name, name,
                    ", ".join(dataset.label_space.malignant_codes) or "none")
    log.info("Scoring all %d images of %s at %dx%d", len(dataset.table), dataset_title(dataset),
             predictor.img_size, predictor.img_size)
    scored = scored_rows(predictor, dataset.table, batch_size)
    failed = scored["error"] != ""
    if failed.all():
        raise DatasetError(f"None of the {len(scored)} images of {dataset.source_dir} could be read.")
    for row in scored[failed].itertuples():
        log.warning("Not scored: %s (%s)", row.image_path, row.error)
    usable = scored[~failed].reset_index(drop=True)
    truth = malignant_truth(usable["dx"], mapping, dataset, predictor)
    score = usable["malignant_score"].to_numpy(float)
    groups = usable[dataset.group_by].to_numpy(str)
    thresholds = operating_points(predictor)
    result = {
        "dataset": dataset_title(dataset), "provenance": dataset.provenance.as_dict(),
        "source_dir": str(dataset.source_dir), "layout": dataset.layout,
        "out_of_distribution": int(usable["out_of_distribution"].sum()) if predictor.ood else None,
        "model": str(run.best_model), "task": predictor.task.kind, "model_label_space": predictor.task.label_space.name,
        "images": int(len(usable)), "groups": int(len(set(groups))), "grouped_by": dataset.group_by,
        "malignant": int(truth.sum()), "not_scored": scored.loc[failed, "image_path"].tolist(),
        "label_mapping": mapping, "unknown_to_model": unknown,
        "thresholds": thresholds, "bootstrap_samples": bootstrap,
        SCREENING_METRICS: screening_metrics(truth, score, thresholds, groups, bootstrap),
        **class_results(usable, mapping, predictor, groups, bootstrap)}
    write_text_atomic(out_dir / PREDICTIONS_FILE, usable.assign(malignant=truth).to_csv(index=False))
    plot_external(out_dir, truth, score, result, f"external: {dataset_title(dataset)}")
    write_json_atomic(out_dir / METRICS_FILE, result)
    if run.test_metrics().is_file():  # the card is written from the test evaluation, with this beside it
        log.info("Model card: %s", write_model_card(run))
    result["metrics_file"] = str(out_dir / METRICS_FILE)
    return result
