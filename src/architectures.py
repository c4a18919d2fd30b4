"""The architecture table: one row per backbone, read by every step.

Each row gives the native input size, the preprocessing the backbone was trained with (applied
inside the model, see ``src.preprocessing``), the default learning rates of the two training
phases and how many backbone layers phase 2 unfreezes by default.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Architecture:
    """One backbone and its training defaults.

    ``preprocessing`` names the scheme of ``keras.applications.<module>.preprocess_input``:
    ``caffe`` (RGB to BGR, ImageNet mean subtracted), ``tf`` (scaled to [-1, 1]), ``torch`` (to
    [0, 1], then ImageNet mean and std), ``builtin`` (the backbone normalises raw pixels itself,
    as EfficientNet does) or ``unit`` (scaled to [0, 1], for the CNN trained from scratch).
    """

    name: str
    keras_class: str | None  # constructor in keras.applications; None for the simple CNN
    keras_module: str | None  # keras.applications module whose preprocess_input is matched
    input_size: int
    preprocessing: str
    learning_rate: float  # phase 1: head only, backbone frozen
    unfreeze_layers: int  # phase 2: backbone layers unfrozen from the top (-1: all)
    aliases: tuple[str, ...] = ()

    @property
    def fine_tune_learning_rate(self) -> float:
        """Phase-2 learning rate: a tenth of phase 1, so fine-tuning does not wreck features."""
        return self.learning_rate / 10

    @property
    def pretrained(self) -> bool:
        return self.keras_class is not None

    def as_dict(self) -> dict:
        return {**asdict(self), "fine_tune_learning_rate": self.fine_tune_learning_rate}


ARCHITECTURES: dict[str, Architecture] = {
    spec.name: spec
    for spec in (
        Architecture("simple_cnn", None, None, 128, "unit", 1e-3, -1, ("cnn", "simplecnn")),
        Architecture("resnet50", "ResNet50", "resnet50", 224, "caffe", 1e-3, 30),
        Architecture("vgg16", "VGG16", "vgg16", 224, "caffe", 1e-4, 4),
        Architecture("inception_v3", "InceptionV3", "inception_v3", 299, "tf", 1e-3, 62),
        Architecture("inception_resnet_v2", "InceptionResNetV2", "inception_resnet_v2", 299, "tf",
                     1e-3, 60),
        Architecture("xception", "Xception", "xception", 299, "tf", 1e-3, 30),
        Architecture("densenet121", "DenseNet121", "densenet", 224, "torch", 1e-3, 50),
        Architecture("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, "tf", 1e-3, 30),
        Architecture("efficientnet_b0", "EfficientNetB0", "efficientnet", 224, "builtin", 1e-3, 20),
        Architecture("efficientnet_b1", "EfficientNetB1", "efficientnet", 240, "builtin", 1e-3, 20),
        Architecture("efficientnet_b2", "EfficientNetB2", "efficientnet", 260, "builtin", 1e-3, 20),
        Architecture("efficientnet_b3", "EfficientNetB3", "efficientnet", 300, "builtin", 1e-3, 20),
    )
}


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_LOOKUP = {
    _normalise(alias): spec
    for spec in ARCHITECTURES.values()
    for alias in (spec.name, spec.keras_class or "", *spec.aliases)
    if alias
}


def get_architecture(name: str) -> Architecture:
    """Look up an architecture by its name or a common spelling (``EfficientNetB3``,
    ``efficientnet-b3``, ``InceptionV3``, ``ResNet50`` ...)."""
    spec = _LOOKUP.get(_normalise(name))
    if spec is None:
        raise ValueError(
            f"Unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)} "
            "(Keras spellings such as EfficientNetB0 or ResNet50 work too)."
        )
    return spec
