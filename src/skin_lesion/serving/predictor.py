"""A trained model ready to score images: the model with its task, calibration, tuned threshold
and metadata encoding, from a run folder, a copied ``.h5`` file or an exported model.

Evaluation, inference, explanations and the web app all score through a ``Predictor``, so a
file gets the same calibrated score and label everywhere. A model file copied without its run
folder brings what it knows about itself (``skin_lesion.models.saved``): its task over its label
space, so the meaning of its outputs comes from the model and never from one dataset's codes.
``threshold.json`` and ``calibration.json`` are looked for beside it (``ModelFileLayout``), and
what had to be assumed instead is listed in ``notes``. An exported model (08_export.py: .keras,
SavedModel, TFLite, ONNX) brings all of it in its ``description.json``; all but the ``.keras``
file score through their own runtime (``skin_lesion.export.runtimes``), TFLite and ONNX without
TensorFlow, and have no gradients for explanations.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from skin_lesion.data.records import task_of_outputs, task_of_record
from skin_lesion.data.metadata import MetadataEncoding
from skin_lesion.defaults import UNTUNED_THRESHOLD
from skin_lesion.export.description import description_path, detector_of, read_description
from skin_lesion.export.runtimes import Runner, model_kind, open_runner
from skin_lesion.io_utils import read_json
from skin_lesion.layout import ModelFileLayout, RunLayout
from skin_lesion.model_io import IMAGE_INPUT, METADATA_INPUT
from skin_lesion.models.calibration import Calibration
from skin_lesion.models.ood import OODDetector, load_detector, with_features
from skin_lesion.models.saved import ModelFileError, load_for_prediction, read_model_info
from skin_lesion.tasks import Task

if TYPE_CHECKING:  # Keras is imported by the formats that need it, never to score TFLite or ONNX
    import keras

log = logging.getLogger(__name__)


@dataclass
class Assessment:
    """A batch's calibrated probabilities, feature distances (NaN without the flag), per image
    why it is out of distribution ("" when it is not), and the probabilities before calibration."""

    probabilities: np.ndarray
    distances: np.ndarray
    ood_reasons: list[str]
    raw: np.ndarray


@dataclass
class Predictor:
    """Scores batches of images (uint8 RGB at the model's size) and, if used, metadata:
    through the Keras ``model`` (``.h5``, ``.keras``), else through the ``runner`` of its format."""

    model: keras.Model | None
    model_file: Path
    task: Task
    calibration: Calibration = field(default_factory=Calibration)
    threshold_record: dict | None = None
    encoding: MetadataEncoding | None = None
    ood: OODDetector | None = None
    notes: list[str] = field(default_factory=list)
    assessing_model: keras.Model | None = field(default=None, repr=False)
    runner: Runner | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.ood is None:
            self.notes.append(f"{Path(self.model_file).name} has no out-of-distribution flag (trained "
                              "before it existed, or elsewhere): images unlike skin lesions are "
                              "scored like any other.")

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.task.classes

    @property
    def img_size(self) -> int:
        return self.runner.img_size if self.runner else int(image_input(self.model).shape[1])

    @property
    def uses_metadata(self) -> bool:
        return self.runner.metadata_width > 0 if self.runner else len(self.model.inputs) > 1

    @property
    def without_tensorflow(self) -> bool:
        """Whether it scores without TensorFlow (TFLite, ONNX): then images are decoded with
        OpenCV too (``skin_lesion.data.opencv_images``), and TensorFlow is never imported."""
        return self.runner is not None and not self.runner.needs_tensorflow

    def explainable_model(self) -> keras.Model:
        """The Keras model, for Grad-CAM and saliency, which need its gradients; the other formats
        are refused in one line that says what to use instead."""
        if self.model is None:
            raise ModelFileError(f"{self.model_file.name} (a {model_kind(self.model_file)} model) has no gradients "
                                 "here, so it cannot be explained (Grad-CAM, saliency); its scores stand. "
                                 "Explain with the run's .h5 or the .keras export.")
        return self.model

    @property
    def threshold(self) -> float:
        """The tuned threshold, or the untuned one when the model has none."""
        return float(self.threshold_record["threshold"]) if self.threshold_record else UNTUNED_THRESHOLD

    def inputs(self, images: np.ndarray, metadata: np.ndarray | None = None):
        """The model's input for a batch: the images, or a dict with the metadata too."""
        images = np.asarray(images, np.float32)
        if not self.uses_metadata:
            return images
        return {IMAGE_INPUT: images, METADATA_INPUT: self.metadata_for(len(images), metadata)}

    def metadata_for(self, count: int, metadata: np.ndarray | None) -> np.ndarray | None:
        """A batch's metadata input: as given, else 'unknown' for each image (None if unused)."""
        if not self.uses_metadata:
            return None
        if metadata is None:
            metadata, _ = self.encoding.encode(pd.DataFrame(index=range(count)))
        return metadata

    def outputs(self, images: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
        """Probabilities before calibration: shape (n,) for binary models, (n, classes) otherwise."""
        if self.runner:
            outputs, _ = self.runner(images, self.metadata_for(len(images), metadata))
        else:
            outputs = self.model.predict_on_batch(self.inputs(images, metadata))
        return self.task.probabilities(np.asarray(outputs))

    def assess(self, images: np.ndarray, metadata: np.ndarray | None = None,
               original_sizes: list[tuple[int, int]] | None = None) -> Assessment:
        """Calibrated probabilities and, where the model has the out-of-distribution flag, each
        image's feature distance and why it is unlike the training images (one pass)."""
        if self.ood is None:
            raw = self.outputs(images, metadata)
            return Assessment(self.calibration.apply(raw), np.full(len(images), np.nan), [""] * len(images), raw)
        outputs, features = self.outputs_and_features(images, metadata)
        distances, reasons = self.ood.reasons(images, np.asarray(features), original_sizes)
        raw = self.task.probabilities(np.asarray(outputs))
        return Assessment(self.calibration.apply(raw), distances, reasons, raw)

    def outputs_and_features(self, images: np.ndarray, metadata: np.ndarray | None):
        """Raw outputs and pooled image features, in one pass."""
        if self.runner:
            return self.runner(images, self.metadata_for(len(images), metadata))
        if self.assessing_model is None:
            self.assessing_model = with_features(self.model)
        return self.assessing_model.predict_on_batch(self.inputs(images, metadata))

    def encode_metadata(self, table: pd.DataFrame) -> tuple[np.ndarray | None, list[str]]:
        """The metadata input for rows with ``age``, ``sex``, ``localization`` (None if unused)."""
        if not self.uses_metadata:
            return None, [""] * len(table)
        return self.encoding.encode(table)

    def scores(self, probabilities: np.ndarray) -> np.ndarray:
        return self.task.malignant_score(probabilities)

    def top_classes(self, probabilities: np.ndarray) -> np.ndarray:
        """Indices of the multi-class decision for calibrated probabilities (``Calibration.top_class``)."""
        return self.calibration.top_class(probabilities)

    def describe(self) -> str:
        """One line: the model, its input and its operating point."""
        point = (f"tuned threshold {self.threshold:.3f}" if self.threshold_record
                 else f"threshold {UNTUNED_THRESHOLD} (none tuned)")
        metadata = " and patient metadata" if self.uses_metadata else ""
        return (f"{self.model_file.name}: {self.task.kind}, {self.img_size}x{self.img_size} images{metadata}, "
                f"{point}, calibration {self.calibration.method}")


def image_input(model: keras.Model):
    """The model's image input (named ``image`` by this project; else its first input)."""
    named = [tensor for tensor in model.inputs if tensor.name.split(":")[0] == IMAGE_INPUT]
    return named[0] if named else model.inputs[0]


def read_threshold(path: Path) -> dict | None:
    """A ``threshold.json`` (the tuned threshold and its validation rates), or None."""
    return read_json(path, "Threshold file") if Path(path).is_file() else None


def calibration_for(path: Path, task: Task) -> Calibration:
    """The calibration map in ``path``, refused if it was fitted for another task (a file
    left beside a copied model by another run)."""
    record = read_json(path, "Calibration file")
    fitted = task_of_record(record, str(path)) if "task" in record else task
    if fitted != task:
        raise ModelFileError(f"{path} calibrates a model of another task ({fitted.describe()} "
                             f"over {fitted.label_space.name}, not {task.describe()} over "
                             f"{task.label_space.name}); copy the model's own calibration.json "
                             "beside it, or remove this one.")
    return Calibration.from_dict(record)


def from_run(run: RunLayout) -> Predictor:
    """The predictor of a run folder: its best model and the files beside it."""
    description = read_json(run.config, "Training config")
    encoding = description.get("metadata_encoding")
    predictor = Predictor(load_for_prediction(run.best_model), run.best_model,
                          task_of_record(description, str(run.config)),
                          Calibration.from_file(run.calibration), read_threshold(run.threshold),
                          MetadataEncoding.from_dict(encoding) if encoding else None,
                          load_detector(run.best_model))
    if predictor.threshold_record is None:
        predictor.notes.append(f"No {run.threshold}: labelling at threshold {UNTUNED_THRESHOLD}. "
                               "Run scripts/04_tune_threshold.py for the tuned operating point.")
    return predictor


def from_export(path: Path) -> Predictor:
    """The predictor of an exported model from its ``description.json`` alone, so a copied export
    folder scores as the run does: the ``.keras`` file in Keras, the others through their runners."""
    in_keras = model_kind(path) == "keras"
    description = read_description(path)
    info, where = description["model_info"], str(description_path(path))
    encoding, calibration = info.get("metadata_encoding"), description.get("calibration")
    predictor = Predictor(load_for_prediction(path) if in_keras else None, path, task_of_record(info, where),
                          Calibration.from_dict(calibration) if calibration else Calibration(),
                          description.get("threshold"), MetadataEncoding.from_dict(encoding) if encoding else None,
                          detector_of(description), runner=None if in_keras else open_runner(path))
    if not calibration:
        predictor.notes.append(f"{where} has no calibration: the model's raw probabilities are used.")
    if predictor.threshold_record is None:
        predictor.notes.append(f"{where} has no tuned threshold: labelling at threshold {UNTUNED_THRESHOLD}.")
    return predictor


def from_model_file(path: Path) -> Predictor:
    """The predictor of a copied ``.h5`` file, with whatever files came with it, or of an
    exported model (any other format)."""
    path = Path(path)
    files = ModelFileLayout(path).require()
    if path.suffix.lower() != ".h5":
        return from_export(path)
    model = load_for_prediction(path)
    info = read_model_info(path) or {}
    task = task_of_record(info, str(path)) if info else task_of_outputs(model.outputs[0].shape[-1], path)
    encoding = info.get("metadata_encoding")
    predictor = Predictor(model, path, task, encoding=MetadataEncoding.from_dict(encoding) if encoding else None,
                          ood=load_detector(path))
    if len(model.inputs) > 1 and predictor.encoding is None:
        raise ModelFileError(f"{path} has a metadata input but does not say how to encode the "
                             "metadata; use the model file written by scripts/03_train.py.")
    calibration, threshold = files.calibration, files.threshold
    if calibration:
        predictor.calibration = calibration_for(calibration, task)
    else:
        predictor.notes.append("No calibration.json beside the model: its raw probabilities are used.")
    if threshold:
        predictor.threshold_record = read_threshold(threshold)
    else:
        predictor.notes.append(f"No threshold.json beside the model: labelling at threshold "
                               f"{UNTUNED_THRESHOLD}.")
    if not info:
        predictor.notes.append(f"{path.name} was not saved by this project: task '{task.kind}' "
                               "was read from its output layer.")
    return predictor


def load_predictor(run: RunLayout | None = None, model_file: Path | None = None) -> Predictor:
    """From a model file when given, else from the run; notes are logged as warnings."""
    predictor = from_model_file(model_file) if model_file else from_run(run)
    for note in predictor.notes:
        log.warning(note)
    return predictor
