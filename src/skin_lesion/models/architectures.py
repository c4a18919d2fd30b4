"""The architecture table: one row per backbone, read by every step.

Each row gives the native input size, the preprocessing the backbone was trained with (applied
inside the model, see ``skin_lesion.models.preprocessing``), the default learning rates of the two
training phases and how many backbone layers phase 2 unfreezes by default.
:func:`resolve_defaults` is the one place where these defaults meet the user's settings.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from skin_lesion.errors import ConfigError


@dataclass(frozen=True)
class Architecture:
    """One backbone and its training defaults.

    ``preprocessing`` names the scheme of ``keras.applications.<module>.preprocess_input``:
    ``caffe`` (RGB to BGR, ImageNet mean subtracted), ``tf`` (scaled to [-1, 1]), ``torch`` (to
    [0, 1], then ImageNet mean and std), ``builtin`` (the backbone normalises raw pixels itself,
    as EfficientNet does) or ``unit`` (scaled to [0, 1], for the CNNs trained from scratch,
    whose builders are ``skin_lesion.models.backbones.SCRATCH_BACKBONES``). Their "fine-tuning" rate is
    their full rate: with nothing pretrained to protect, phase 2 is simply training.
    """

    name: str
    keras_class: str | None  # constructor in keras.applications; None for the CNNs trained from scratch
    keras_module: str | None  # keras.applications module whose preprocess_input is matched
    input_size: int
    preprocessing: str
    learning_rate: float  # phase 1: head only, backbone frozen
    fine_tune_learning_rate: float  # phase 2: lower, so fine-tuning does not wreck features
    unfreeze_layers: int  # phase 2: backbone layers unfrozen from the top (-1: all)
    aliases: tuple[str, ...] = ()

    @property
    def pretrained(self) -> bool:
        """True for keras.applications backbones, which have ImageNet weights."""
        return self.keras_class is not None

    def as_dict(self) -> dict:
        return asdict(self)


ARCHITECTURES: dict[str, Architecture] = {
    spec.name: spec
    for spec in (
        Architecture("simple_cnn", None, None, 128, "unit", 1e-3, 1e-3, -1, ("cnn", "simplecnn")),
        Architecture("vgg_scratch", None, None, 64, "unit", 2e-3, 2e-3, -1, ("vgg_cpu", "scratch_vgg")),
        Architecture("resnet50", "ResNet50", "resnet50", 224, "caffe", 1e-3, 1e-4, 30),
        Architecture("vgg16", "VGG16", "vgg16", 224, "caffe", 1e-4, 1e-5, 4),
        Architecture("inception_v3", "InceptionV3", "inception_v3", 299, "tf", 1e-3, 1e-4, 62),
        Architecture("inception_resnet_v2", "InceptionResNetV2", "inception_resnet_v2", 299, "tf",
                     1e-3, 1e-4, 60),
        Architecture("xception", "Xception", "xception", 299, "tf", 1e-3, 1e-4, 30),
        Architecture("densenet121", "DenseNet121", "densenet", 224, "torch", 1e-3, 1e-4, 50),
        Architecture("mobilenet_v2", "MobileNetV2", "mobilenet_v2", 224, "tf", 1e-3, 1e-4, 30),
        Architecture("efficientnet_b0", "EfficientNetB0", "efficientnet", 224, "builtin", 1e-3, 1e-4, 20),
        Architecture("efficientnet_b1", "EfficientNetB1", "efficientnet", 240, "builtin", 1e-3, 1e-4, 20),
        Architecture("efficientnet_b2", "EfficientNetB2", "efficientnet", 260, "builtin", 1e-3, 1e-4, 20),
        Architecture("efficientnet_b3", "EfficientNetB3", "efficientnet", 300, "builtin", 1e-3, 1e-4, 20),
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
        raise ConfigError(
            f"Unknown architecture {name!r}; choose one of: {', '.join(ARCHITECTURES)} "
            "(Keras spellings such as EfficientNetB0 or ResNet50 work too)."
        )
    return spec


def resolve_defaults(spec: Architecture, img_size: int | None = None,
                     learning_rate: float | None = None,
                     fine_tune_learning_rate: float | None = None,
                     unfreeze_layers: int | None = None) -> dict:
    """The architecture's defaults for every setting the user left unset (``None``).

    A phase-1 learning rate set by the user carries the table's phase-2 ratio with it, so
    ``--learning-rate 3e-3`` alone fine-tunes at 3e-4 for a backbone whose rates are 1e-3/1e-4.
    """
    phase1 = learning_rate or spec.learning_rate
    return {
        "img_size": img_size or spec.input_size,
        "learning_rate": phase1,
        "fine_tune_learning_rate": fine_tune_learning_rate
        or phase1 * spec.fine_tune_learning_rate / spec.learning_rate,
        "unfreeze_layers": spec.unfreeze_layers if unfreeze_layers is None else unfreeze_layers,
    }
