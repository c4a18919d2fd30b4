"""The description that travels with an exported model, whatever its format.

An ``.h5`` carries its self-description as an HDF5 attribute and its out-of-distribution detector
as an HDF5 group; no other format can hold either. Each export folder therefore holds one
``description.json`` beside the model: the ``.h5``'s attribute (task, classes, input size,
decoding, metadata encoding, dataset), the run's calibration and tuned threshold, the detector
(its record, and its mean and precision arrays as base64 float32, exact and readable without
HDF5), what the exported model's inputs and outputs are, and how closely it scores as the
``.h5`` does. Reading it needs NumPy only, so TFLite and ONNX models score without TensorFlow.
"""
from __future__ import annotations

import base64
from dataclasses import asdict
from pathlib import Path

import numpy as np

from skin_lesion.errors import MissingFileError
from skin_lesion.io_utils import read_json, write_json_atomic
from skin_lesion.layout import DESCRIPTION_FILE, ModelFileLayout
from skin_lesion.models.ood import FeatureDistance, OODDetector, PixelChecks

#: Bumped when the description's fields change meaning.
DESCRIPTION_VERSION = 1
#: The exported models' named outputs: the probabilities and, where the model has this
#: project's pooled layer, the pooled image features the out-of-distribution flag measures.
PROBABILITIES = "probabilities"
FEATURES = "features"


def encode_array(array: np.ndarray) -> dict:
    """A float32 array as JSON: its shape and its little-endian bytes in base64 (exact)."""
    array = np.ascontiguousarray(array, dtype="<f4")
    return {"dtype": "float32", "shape": list(array.shape), "base64": base64.b64encode(array.tobytes()).decode()}


def decode_array(record: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(record["base64"]), dtype="<f4").reshape(record["shape"]).astype(np.float32)


def detector_record(detector: OODDetector | None) -> dict | None:
    """The detector as JSON: its record (threshold, rates, pixel checks) and its arrays."""
    if detector is None:
        return None
    return {"record": {**detector.record, "pixel_checks": asdict(detector.checks)},
            "means": encode_array(detector.distance.means), "precision": encode_array(detector.distance.precision)}


def detector_of(description: dict) -> OODDetector | None:
    """The out-of-distribution detector a description carries (None where the model had none)."""
    stored = description.get("out_of_distribution")
    if not stored:
        return None
    record = stored["record"]
    distance = FeatureDistance(decode_array(stored["means"]), decode_array(stored["precision"]))
    return OODDetector(distance, float(record["threshold"]), PixelChecks(**record["pixel_checks"]), record)


def description_path(model_path: Path) -> Path:
    """Where a model's description is: in a SavedModel's own folder, else beside the file."""
    return ModelFileLayout(model_path).description


def read_description(model_path: Path) -> dict:
    """The description of an exported model, or an error that says where it should be."""
    path = description_path(model_path)
    if not path.is_file():
        raise MissingFileError(f"{model_path}: no {DESCRIPTION_FILE} beside it. Copy the whole export "
                               "folder written by scripts/08_export.py (the model and its description).")
    return read_json(path, "Model description")


def write_description(model_path: Path, description: dict) -> Path:
    path = description_path(model_path)
    write_json_atomic(path, {"description_version": DESCRIPTION_VERSION, **description})
    return path
