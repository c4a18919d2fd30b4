"""Writing a run's model in the formats other projects use, each through its field's own tool.

Every format but ``keras`` is written from one *serving model*: the run's model behind a uint8
image input (as images are decoded; the cast to float32 is inside the model), with two named
outputs, the probabilities and the pooled image features the out-of-distribution flag measures
(``skin_lesion.models.ood.with_features``; only the probabilities for models without the
pooled layer). So a SavedModel, a TFLite or an ONNX model gives the same two answers the
``.h5`` gives the project, and TensorFlow Serving receives the images exactly as decoded.

* ``keras``: the model itself in Keras 3's native ``.keras`` (``model.save``), loadable by
  ``keras.models.load_model`` under any backend;
* ``savedmodel``: Keras' own ``model.export(format="tf_saved_model")``, signature
  ``serving_default``;
* ``tflite``, ``tflite-float16``, ``tflite-int8``: ``tf.lite.TFLiteConverter`` from that
  SavedModel; float16 stores the weights in half precision, int8 is full-integer quantisation
  calibrated on a representative set of the run's training images (its image cache);
* ``onnx``: Keras' own ``model.export(format="onnx")`` (tf2onnx underneath).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from skin_lesion.export.description import FEATURES, PROBABILITIES
from skin_lesion.model_io import IMAGE_INPUT, METADATA_INPUT
from skin_lesion.models.ood import with_features

log = logging.getLogger(__name__)

#: Representative images the int8 quantiser calibrates its ranges on (the TFLite guide's
#: 100-500; more change nothing measurable and cost minutes on a CPU).
REPRESENTATIVE_IMAGES = 200


def serving_model(model: keras.Model) -> keras.Model:
    """The model behind a uint8 image input, with named probability and feature outputs."""
    scoring = with_features(model)
    image = keras.Input(model.inputs[0].shape[1:], dtype="uint8", name=IMAGE_INPUT)
    inputs = [image] + [keras.Input(tensor.shape[1:], name=METADATA_INPUT) for tensor in model.inputs[1:]]
    pixels = keras.ops.cast(image, "float32")
    given = [pixels, *inputs[1:]] if len(inputs) > 1 else pixels
    if scoring is None:
        serving = keras.Model(inputs, {PROBABILITIES: model(given, training=False)})
    else:
        probabilities, features = scoring(given, training=False)  # no dropout in an ensemble's members either
        serving = keras.Model(inputs, {PROBABILITIES: probabilities, FEATURES: features})
    serving([np.zeros((1, *tensor.shape[1:]), tensor.dtype) for tensor in inputs])  # called once: Keras'
    return serving  # ONNX export refuses a model never called (--format onnx alone failed)


def write_keras(model: keras.Model, destination: Path, _context: "ExportContext") -> None:
    model.save(destination)


def write_savedmodel(_model: keras.Model, destination: Path, context: "ExportContext") -> None:
    shutil.copytree(context.savedmodel(), destination, dirs_exist_ok=True)


def write_onnx(_model: keras.Model, destination: Path, context: "ExportContext") -> None:
    context.serving.export(str(destination), format="onnx", verbose=False)


def tflite_writer(kind: str) -> Callable[[keras.Model, Path, "ExportContext"], None]:
    """A writer of TFLite models: ``float32``, ``float16`` (half-precision weights) or ``int8``
    (full-integer: int8 weights and activations, uint8 images in, float probabilities out)."""
    def write(_model: keras.Model, destination: Path, context: "ExportContext") -> None:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(context.savedmodel()))
        if kind == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif kind == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = context.representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        destination.write_bytes(converter.convert())
    return write


WRITERS = {"keras": write_keras, "savedmodel": write_savedmodel, "tflite": tflite_writer("float32"),
           "tflite-float16": tflite_writer("float16"), "tflite-int8": tflite_writer("int8"), "onnx": write_onnx}


class ExportContext:
    """What several formats share, made once: the serving model, its SavedModel (the TFLite
    converter's input) and the representative images of int8 quantisation."""

    def __init__(self, model: keras.Model, representative_inputs: Callable[[], tuple[np.ndarray, np.ndarray | None]]):
        self.model = model
        self.serving = serving_model(model)
        self.representative_inputs = representative_inputs
        self.scratch = Path(tempfile.mkdtemp(prefix="skin_lesion_export_"))

    def savedmodel(self) -> Path:
        """The serving model as a SavedModel (Keras' own export), written once."""
        path = self.scratch / "savedmodel"
        if not path.exists():
            self.serving.export(str(path), format="tf_saved_model", verbose=False)
        return path

    def representative(self) -> Iterator[dict]:
        """One input at a time, as the TFLite converter wants them: training images with, for
        metadata models, their encoded metadata."""
        images, metadata = self.representative_inputs()
        for index, image in enumerate(images):
            sample = {IMAGE_INPUT: np.asarray(image[None], np.uint8)}
            if metadata is not None:
                sample[METADATA_INPUT] = np.asarray(metadata[index][None], np.float32)
            yield sample

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)


def write_format(name: str, destination: Path, context: ExportContext) -> None:
    """Write one format's model to ``destination`` (a file, or a SavedModel folder)."""
    WRITERS[name](context.model, destination, context)
