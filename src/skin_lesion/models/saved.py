"""Saved models: ``.h5`` files that describe themselves, and loading them with clear errors.

The model is saved with ``model.save`` (HDF5, standard layers only) and the facts needed to
use it anywhere are added as one JSON attribute of the file: the task and class names, the
input size, how the images were decoded, what data it learnt from (``dataset``: name, source,
licence, whether synthetic) and, for a model with a metadata input, the exact encoding of age,
sex and site. ``keras.models.load_model`` ignores the attribute; the project's own steps read
it, so a model copied to another machine still scores images and metadata the way it was
trained to, and still says what it learnt from.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import h5py

from skin_lesion.errors import MissingFileError, UserError
from skin_lesion.io_utils import atomic_path

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

INFO_ATTRIBUTE = "skin_lesion_model_info"


class ModelFileError(UserError):
    """A model file that cannot be read; the message names it and says why."""


def portable(config):
    """A Keras model config for any machine: mixed-precision dtype policies set to float32,
    and BatchNormalization not synchronized across replicas (a training-time option that
    other Keras backends refuse)."""
    if isinstance(config, list):
        return [portable(item) for item in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy" and str(config["config"]["name"]).startswith("mixed_"):
        return {**config, "config": {**config["config"], "name": "float32"}}
    return {key: False if key == "synchronized" else portable(value) for key, value in config.items()}


def save_model(model: keras.Model, path: Path, info: dict) -> None:
    """Save ``model`` to ``path`` (``.h5``, atomically) with ``info`` inside the file.

    A model trained in mixed precision keeps its variables in float32; its saved config is
    set to float32 throughout, so the file computes in float32 on any machine (bfloat16 and
    float16 are slow or missing on many CPUs and older GPUs), and BatchNormalization is not
    synchronized (see :func:`portable`).
    """
    with atomic_path(path) as partial:
        model.save(partial)
        with h5py.File(partial, "a") as handle:
            config = json.loads(handle.attrs["model_config"])
            handle.attrs["model_config"] = json.dumps(portable(config))
            handle.attrs[INFO_ATTRIBUTE] = json.dumps(info, sort_keys=True)


def read_model_info(path: Path) -> dict | None:
    """The JSON facts saved in a model file, or None for models saved elsewhere."""
    try:
        with h5py.File(path, "r") as handle:
            text = handle.attrs.get(INFO_ATTRIBUTE)
    except OSError as error:
        raise ModelFileError(f"{path} is not an HDF5 (.h5) model file: {error}") from error
    return json.loads(text) if text is not None else None


def load_for_prediction(path: Path) -> keras.Model:
    """A saved ``.h5`` model for prediction only (no optimizer or metrics to rebuild). Keras is
    imported here, not with the module: reading a model's facts, and scoring TFLite or ONNX
    models, must not wait for TensorFlow."""
    import keras

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"Model file {path} not found; was the run completed?")
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, TypeError, KeyError, OSError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        advice = "Pass a model saved by scripts/03_train.py (or any Keras .h5/.keras model)."
        if "Lambda" in str(error):
            advice = ("It holds a Lambda layer (Python code), which Keras refuses to load from a "
                      "file it cannot trust; models trained by this project have none. Rebuild "
                      "the model without Lambda layers, or load it yourself with "
                      "keras.models.load_model(..., safe_mode=False) if you trust its source.")
        raise ModelFileError(f"Cannot load the model file {path}: {reason} {advice}") from error
