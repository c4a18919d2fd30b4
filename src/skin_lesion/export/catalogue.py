"""The export formats and what each is: the table the script's flags, the exporter, scoring and
explanations share (no TensorFlow here, so the command line starts at once)."""
from __future__ import annotations

from dataclasses import dataclass

#: ``--format all``: every format, in the order they are written.
ALL = "all"
#: The model files that score without TensorFlow (LiteRT, ONNX Runtime; images decoded with OpenCV).
TENSORFLOW_FREE_SUFFIXES = (".tflite", ".onnx")
#: The model files with gradients here, so Grad-CAM and saliency can explain them.
EXPLAINABLE_SUFFIXES = (".h5", ".keras")


@dataclass(frozen=True)
class Format:
    """An export format: its folder under ``export/``, its model's name there ("" for a
    SavedModel: the folder is the model), whether scoring it may differ from the ``.h5``
    (quantised weights or arithmetic), and whether it has gradients for Grad-CAM."""

    name: str
    file_name: str
    quantised: bool = False
    explains: bool = False


FORMATS = {f.name: f for f in (
    Format("keras", "model.keras", explains=True),
    Format("savedmodel", ""),
    Format("tflite", "model.tflite"),
    Format("tflite-float16", "model.tflite", quantised=True),
    Format("tflite-int8", "model.tflite", quantised=True),
    Format("onnx", "model.onnx"),
)}
