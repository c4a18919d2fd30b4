"""A trained model ready to score images: the model with its task, calibration, tuned threshold
and metadata encoding, from a run folder or from a copied ``.h5`` file.

Evaluation, inference, explanations and the web app all score through a ``Predictor``, so a
file gets the same calibrated score and label everywhere. A model file copied without its run
folder brings what it knows about itself (``src.models.saved``); ``threshold.json`` and
``calibration.json`` are looked for beside it (or one folder up, as in a run folder), and what
had to be assumed instead is listed in ``notes``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from src.data.metadata import MetadataEncoding
from src.data.pipeline import IMAGE_INPUT, METADATA_INPUT
from src.defaults import UNTUNED_THRESHOLD
from src.errors import ConfigError
from src.io_utils import read_json
from src.labels import class_names, malignant_score
from src.layout import RunLayout
from src.models.calibration import Calibration
from src.evaluation.threshold import read_threshold
from src.models.saved import ModelFileError, load_for_prediction, read_model_info

log = logging.getLogger(__name__)



@dataclass
class Predictor:
    """Scores batches of images (uint8 RGB at the model's size) and, if used, metadata."""

    model: keras.Model
    model_file: Path
    task: str
    calibration: Calibration = field(default_factory=Calibration)
    threshold_record: dict | None = None
    encoding: MetadataEncoding | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> tuple[str, ...]:
        return class_names(self.task)

    @property
    def img_size(self) -> int:
        return int(image_input(self.model).shape[1])

    @property
    def uses_metadata(self) -> bool:
        return len(self.model.inputs) > 1

    @property
    def threshold(self) -> float:
        """The tuned threshold, or 0.5 when the model has none."""
        return float(self.threshold_record["threshold"]) if self.threshold_record else UNTUNED_THRESHOLD

    def inputs(self, images: np.ndarray, metadata: np.ndarray | None = None):
        """The model's input for a batch: the images, or a dict with the metadata too."""
        images = np.asarray(images, np.float32)
        if not self.uses_metadata:
            return images
        if metadata is None:
            metadata, _ = self.encoding.encode(pd.DataFrame(index=range(len(images))))
        return {IMAGE_INPUT: images, METADATA_INPUT: metadata}

    def probabilities(self, images: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities: shape (n,) for binary models, (n, 7) for 7 classes."""
        raw = np.asarray(self.model.predict_on_batch(self.inputs(images, metadata)), np.float64)
        return self.calibration.apply(raw[:, 0] if self.task == "binary" else raw)

    def encode_metadata(self, table: pd.DataFrame) -> tuple[np.ndarray | None, list[str]]:
        """The metadata input for rows with ``age``, ``sex``, ``localization`` (None if unused)."""
        if not self.uses_metadata:
            return None, [""] * len(table)
        return self.encoding.encode(table)

    def scores(self, probabilities: np.ndarray) -> np.ndarray:
        return malignant_score(probabilities, self.task)

    def top_classes(self, probabilities: np.ndarray) -> np.ndarray:
        """Indices of the 7-class decision for calibrated probabilities (``Calibration.top_class``)."""
        return self.calibration.top_class(probabilities)

    def describe(self) -> str:
        """One line: the model, its input and its operating point."""
        point = (f"tuned threshold {self.threshold:.3f}" if self.threshold_record
                 else f"threshold {UNTUNED_THRESHOLD} (none tuned)")
        metadata = " and patient metadata" if self.uses_metadata else ""
        return (f"{self.model_file.name}: {self.task}, {self.img_size}x{self.img_size} images{metadata}, "
                f"{point}, calibration {self.calibration.method}")


def image_input(model: keras.Model):
    """The model's image input (named ``image`` by this project; else its first input)."""
    named = [tensor for tensor in model.inputs if tensor.name.split(":")[0] == IMAGE_INPUT]
    return named[0] if named else model.inputs[0]


def from_run(run: RunLayout) -> Predictor:
    """The predictor of a run folder: its best model and the files beside it."""
    description = read_json(run.config, "Training config")
    encoding = description.get("metadata_encoding")
    predictor = Predictor(load_for_prediction(run.best_model), run.best_model, description["task"],
                          Calibration.from_file(run.calibration), read_threshold(run.threshold),
                          MetadataEncoding.from_dict(encoding) if encoding else None)
    if predictor.threshold_record is None:
        predictor.notes.append(f"No {run.threshold}: labelling at threshold {UNTUNED_THRESHOLD}. "
                               "Run scripts/04_tune_threshold.py for the tuned operating point.")
    return predictor


def beside(model_file: Path, name: str) -> Path | None:
    """``name`` next to the model file, or one folder up (a run's ``models/`` folder)."""
    for folder in (model_file.parent, model_file.parent.parent):
        if (folder / name).is_file():
            return folder / name
    return None


def from_model_file(path: Path) -> Predictor:
    """The predictor of a copied ``.h5`` file, with whatever files came with it."""
    path = Path(path)
    model = load_for_prediction(path)
    info = read_model_info(path) or {}
    task = info.get("task") or task_from_outputs(model, path)
    encoding = info.get("metadata_encoding")
    predictor = Predictor(model, path, task,
                          encoding=MetadataEncoding.from_dict(encoding) if encoding else None)
    if len(model.inputs) > 1 and predictor.encoding is None:
        raise ModelFileError(f"{path} has a metadata input but does not say how to encode the "
                             "metadata; use the model file written by scripts/03_train.py.")
    calibration, threshold = beside(path, "calibration.json"), beside(path, "threshold.json")
    if calibration:
        predictor.calibration = Calibration.from_file(calibration)
    else:
        predictor.notes.append("No calibration.json beside the model: its raw probabilities are used.")
    if threshold:
        predictor.threshold_record = read_threshold(threshold)
    else:
        predictor.notes.append(f"No threshold.json beside the model: labelling at threshold "
                               f"{UNTUNED_THRESHOLD}.")
    if not info:
        predictor.notes.append(f"{path.name} was not saved by this project: task '{task}' "
                               "was read from its output layer.")
    return predictor


def task_from_outputs(model: keras.Model, path: Path) -> str:
    """``binary`` for one output unit, ``multiclass`` for seven."""
    units = model.outputs[0].shape[-1]
    if units in (1, len(class_names("multiclass"))):
        return "binary" if units == 1 else "multiclass"
    raise ConfigError(f"{path} has {units} outputs; this project's models have 1 (benign vs "
                      "malignant) or 7 (the HAM10000 diagnoses).")


def load_predictor(run: RunLayout | None = None, model_file: Path | None = None) -> Predictor:
    """From a copied model file when given, else from the run; notes are logged as warnings."""
    predictor = from_model_file(model_file) if model_file else from_run(run)
    for note in predictor.notes:
        log.warning(note)
    return predictor
