"""Export a run's model: each format in its own folder under ``<run>/export/``, with its
description, after checking that it scores the run's test images as the ``.h5`` does.

The check is part of the export, not an afterthought: every exported model scores the test
split's cached images (the pixels the ``.h5`` was evaluated on), and the largest difference of
its calibrated malignant scores, its label agreement at the tuned threshold and the test ROC-AUC
beside the ``.h5``'s go into its description. A float format that differs by more than
``FLOAT_TOLERANCE`` is refused (a converter bug, not a property of the format); the quantised
formats are kept, with what they cost written down.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skin_lesion.defaults import PREDICTION_BATCH
from skin_lesion.errors import ConfigError
from skin_lesion.export.description import detector_record, write_description
from skin_lesion.export.catalogue import ALL, FORMATS
from skin_lesion.export.formats import REPRESENTATIVE_IMAGES, ExportContext, write_format
from skin_lesion.export.runtimes import KerasRunner, Runner, open_runner
from skin_lesion.io_utils import read_json, refuse_overwrite, sha256_file, staging_dir
from skin_lesion.layout import RunLayout
from skin_lesion.metrics import ranking_metrics
from skin_lesion.models.saved import read_model_info
from skin_lesion.serving.predictor import Predictor, from_run
from skin_lesion.serving.splits import run_split_images

log = logging.getLogger(__name__)

#: The largest difference of calibrated malignant scores a float format may show against the .h5.
FLOAT_TOLERANCE = 1e-4


@dataclass
class SplitInputs:
    """A split's cached images at the model's size, their encoded metadata and their truth."""

    images: np.ndarray
    metadata: np.ndarray | None
    malignant: np.ndarray


def split_inputs(run: RunLayout, predictor: Predictor, split: str, limit: int | None = None) -> SplitInputs:
    """The images of one split of the run (at most ``limit``, spread evenly over the split)."""
    images = run_split_images(run, split, predictor.img_size)
    rows = np.arange(len(images.rows))
    if limit and len(rows) > limit:
        rows = np.linspace(0, len(rows) - 1, limit).round().astype(int)
    table = images.table.iloc[rows].reset_index(drop=True)
    metadata, _ = predictor.encode_metadata(table)
    truth = predictor.task.malignant_of_labels(predictor.task.labels(table["dx"]))
    return SplitInputs(np.asarray(images.cache.images[images.rows[rows]]), metadata, truth)


def malignant_scores(runner: Runner, predictor: Predictor, inputs: SplitInputs) -> np.ndarray:
    """Calibrated malignant scores of ``inputs``, in batches."""
    scores = []
    for start in range(0, len(inputs.images), PREDICTION_BATCH):
        batch = slice(start, start + PREDICTION_BATCH)
        raw, _ = runner(inputs.images[batch], None if inputs.metadata is None else inputs.metadata[batch])
        scores.append(predictor.scores(predictor.calibration.apply(predictor.task.probabilities(raw))))
    return np.concatenate(scores)


def agreement(scores: np.ndarray, reference: np.ndarray, truth: np.ndarray, threshold: float) -> dict:
    """How an exported model's test scores compare with the .h5's."""
    ours, theirs = ranking_metrics(truth, scores)["roc_auc"], ranking_metrics(truth, reference)["roc_auc"]
    return {"split": "test", "images": int(len(scores)),
            "max_score_difference": float(np.max(np.abs(scores - reference))),
            "mean_score_difference": float(np.mean(np.abs(scores - reference))),
            "label_agreement": float(np.mean((scores >= threshold) == (reference >= threshold))),
            "threshold": threshold, "test_roc_auc": ours, "h5_test_roc_auc": theirs,
            "test_roc_auc_change": ours - theirs}


def base_description(run: RunLayout, predictor: Predictor) -> dict:
    """What every format's description holds: the .h5's facts, calibration, threshold, detector."""
    info = read_model_info(run.best_model) or {**predictor.task.as_record(), "img_size": predictor.img_size}
    calibration = read_json(run.calibration, "Calibration file") if run.calibration.is_file() else None
    return {"model_info": info, "calibration": calibration, "threshold": predictor.threshold_record,
            "out_of_distribution": detector_record(predictor.ood),
            "exported_from": {"run": run.root.name, "model": f"models/{run.best_model.name}",
                              "sha256": sha256_file(run.best_model)}}


def chosen_formats(requested: list[str]) -> list[str]:
    """The formats asked for (``all`` for every one), in the order they are written."""
    unknown = sorted(set(requested) - {*FORMATS, ALL})
    if unknown:
        raise ConfigError(f"--format {', '.join(unknown)}: unknown; choose from {', '.join(FORMATS)} or {ALL}.")
    return list(FORMATS) if ALL in requested else [name for name in FORMATS if name in requested]


def export_run(run: RunLayout, formats: list[str], force: bool = False) -> dict[str, dict]:
    """Write each format into ``<run>/export/<format>/``; returns each one's agreement."""
    folders = {name: run.export_format(name) for name in chosen_formats(formats)}
    for folder in folders.values():
        refuse_overwrite(folder, force, "Export")
    predictor = from_run(run)
    base = base_description(run, predictor)
    test = split_inputs(run, predictor, "test")
    reference = malignant_scores(KerasRunner(predictor.model), predictor, test)
    context = ExportContext(predictor.model, lambda: representative(run, predictor))
    results = {}
    try:
        for name, folder in folders.items():
            results[name] = export_one(name, folder, context, base, predictor, test, reference)
    finally:
        context.close()
    return results


def representative(run: RunLayout, predictor: Predictor) -> tuple[np.ndarray, np.ndarray | None]:
    inputs = split_inputs(run, predictor, "train", REPRESENTATIVE_IMAGES)
    return inputs.images, inputs.metadata


def export_one(name: str, folder: Path, context: ExportContext, base: dict, predictor: Predictor,
               test: SplitInputs, reference: np.ndarray) -> dict:
    """Write, check and describe one format, atomically (a folder appears complete or not at all)."""
    spec = FORMATS[name]
    with staging_dir(folder, replace=True) as staging:
        model_path = staging / spec.file_name
        write_format(name, model_path, context)
        scores = malignant_scores(open_runner(model_path), predictor, test)
        record = agreement(scores, reference, test.malignant, predictor.threshold)
        if not spec.quantised and record["max_score_difference"] > FLOAT_TOLERANCE:
            raise RuntimeError(f"The {name} export scores the test images up to "
                               f"{record['max_score_difference']:.2g} away from the .h5 (tolerance "
                               f"{FLOAT_TOLERANCE}); the converter changed the model.")
        size = size_of(model_path)
        write_description(model_path, {**base, "format": name, "model": spec.file_name or ".",
                                       "input": input_description(name, predictor),
                                       "explainable": spec.explains, "agreement": record, "size_bytes": size})
    log.info("%s: %s (%.1f MB; test scores within %.2g of the .h5, labels agree on %.1f %%)", name,
             folder, size / 1e6, record["max_score_difference"], 100 * record["label_agreement"])
    return {**record, "size_bytes": size}


def input_description(name: str, predictor: Predictor) -> dict:
    """What the exported model takes: the .keras file takes float pixels as the .h5 does."""
    image = "float32" if name == "keras" else "uint8"
    described = {"image": {"dtype": image, "shape": [None, predictor.img_size, predictor.img_size, 3],
                           "values": "RGB 0-255, decoded and resized as skin_lesion.data.images does"}}
    if predictor.uses_metadata:
        described["metadata"] = {"dtype": "float32", "shape": [None, predictor.encoding.width],
                                 "columns": list(predictor.encoding.columns)}
    return described


def size_of(path: Path) -> int:
    """Bytes of a model file, or of every file of a SavedModel folder."""
    path = Path(path)
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size

