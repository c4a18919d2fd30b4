"""Running a model in any exported format: each through its own runtime, imported only when used.

A runner takes a batch of uint8 RGB images at the model's size (and, for metadata models, the
encoded metadata) and returns the model's raw outputs and its pooled image features (None where
the model has no pooled layer). TFLite models run in LiteRT's interpreter (``ai-edge-litert``)
and ONNX models in ONNX Runtime: neither imports TensorFlow, so scoring with them starts in a
fraction of the time. ``.h5``/``.keras`` files and SavedModels run in Keras and TensorFlow.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from skin_lesion.errors import MissingFileError
from skin_lesion.export.description import FEATURES, PROBABILITIES
from skin_lesion.layout import SAVED_MODEL_FILE
from skin_lesion.model_io import IMAGE_INPUT, METADATA_INPUT
from skin_lesion.models.saved import ModelFileError

#: The file endings (or folder) of each kind of model file this project scores.
KERAS_SUFFIXES = (".h5", ".keras")
SUPPORTED = ".h5, .keras, .tflite, .onnx or a SavedModel folder"


class Runner(Protocol):
    img_size: int
    metadata_width: int  # 0 for image-only models
    needs_tensorflow: bool  # False: its images are decoded with OpenCV, and TensorFlow never starts

    def __call__(self, images: np.ndarray, metadata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw outputs and pooled features (None without a pooled layer) for a batch."""


def model_kind(path: Path) -> str:
    """``keras``, ``savedmodel``, ``tflite`` or ``onnx``: how a model path is run."""
    path = Path(path)
    if path.is_dir():
        if (path / SAVED_MODEL_FILE).is_file():
            return "savedmodel"
        raise ModelFileError(f"{path} is a folder without {SAVED_MODEL_FILE}; pass a SavedModel folder "
                             f"or a model file ({SUPPORTED}).")
    if not path.is_file():
        raise MissingFileError(f"Model {path} not found; pass a model file ({SUPPORTED}).")
    kinds = {**{suffix: "keras" for suffix in KERAS_SUFFIXES}, ".tflite": "tflite", ".onnx": "onnx"}
    if path.suffix.lower() not in kinds:
        raise ModelFileError(f"{path}: unknown model format '{path.suffix}'; pass {SUPPORTED}.")
    return kinds[path.suffix.lower()]


def feeds(images: np.ndarray, metadata: np.ndarray | None) -> dict[str, np.ndarray]:
    """The exported models' named inputs: uint8 images and float32 metadata."""
    given = {IMAGE_INPUT: np.asarray(images, np.uint8)}
    if metadata is not None:
        given[METADATA_INPUT] = np.asarray(metadata, np.float32)
    return given


class KerasRunner:
    """An ``.h5`` or ``.keras`` model (float32 0-255 pixels in, as it was trained)."""

    needs_tensorflow = True

    def __init__(self, model):
        from skin_lesion.models.ood import with_features

        self.model = model
        self.scoring = with_features(model)
        self.img_size = int(model.inputs[0].shape[1])
        self.metadata_width = int(model.inputs[1].shape[-1]) if len(model.inputs) > 1 else 0

    def __call__(self, images, metadata=None):
        pixels = np.asarray(images, np.float32)
        given = pixels if metadata is None else [pixels, np.asarray(metadata, np.float32)]
        if self.scoring is None:
            return np.asarray(self.model.predict_on_batch(given)), None
        outputs, features = self.scoring.predict_on_batch(given)
        return np.asarray(outputs), np.asarray(features)


class SavedModelRunner:
    """A SavedModel's ``serving_default`` signature, as TensorFlow Serving runs it."""

    needs_tensorflow = True

    def __init__(self, path: Path):
        import tensorflow as tf

        self.signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        specs = self.signature.structured_input_signature[1]
        self.img_size = int(specs[IMAGE_INPUT].shape[1])
        self.metadata_width = int(specs[METADATA_INPUT].shape[-1]) if METADATA_INPUT in specs else 0

    def __call__(self, images, metadata=None):
        outputs = {name: value.numpy() for name, value in self.signature(**feeds(images, metadata)).items()}
        return outputs[PROBABILITIES], outputs.get(FEATURES)


class TFLiteRunner:
    """A ``.tflite`` model in LiteRT's interpreter, on every CPU core."""

    needs_tensorflow = False

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self.runner = Interpreter(model_path=str(path), num_threads=os.cpu_count()).get_signature_runner()
        inputs = self.runner.get_input_details()
        self.img_size = int(inputs[IMAGE_INPUT]["shape"][1])
        self.metadata_width = int(inputs[METADATA_INPUT]["shape"][-1]) if METADATA_INPUT in inputs else 0

    def __call__(self, images, metadata=None):
        outputs = self.runner(**feeds(images, metadata))
        return outputs[PROBABILITIES], outputs.get(FEATURES)


class OnnxRunner:
    """An ``.onnx`` model in ONNX Runtime (CPU)."""

    needs_tensorflow = False

    def __init__(self, path: Path):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = {tensor.name: tensor.shape for tensor in self.session.get_inputs()}
        self.outputs = [tensor.name for tensor in self.session.get_outputs()]
        self.img_size = int(inputs[IMAGE_INPUT][1])
        self.metadata_width = int(inputs[METADATA_INPUT][-1]) if METADATA_INPUT in inputs else 0

    def __call__(self, images, metadata=None):
        outputs = dict(zip(self.outputs, self.session.run(self.outputs, feeds(images, metadata))))
        return outputs[PROBABILITIES], outputs.get(FEATURES)


def open_runner(path: Path) -> Runner:
    """The runner of a model in any supported format."""
    kind = model_kind(path)
    if kind == "keras":
        from skin_lesion.models.saved import load_for_prediction

        return KerasRunner(load_for_prediction(path))
    return {"savedmodel": SavedModelRunner, "tflite": TFLiteRunner, "onnx": OnnxRunner}[kind](path)
