"""Feature extractors: ``keras.applications`` backbones and the small CNNs trained from scratch.

Every backbone is a ``keras.Model`` named ``backbone`` that maps preprocessed pixels to a
feature map; the classifier head (``skin_lesion.models.factory``) pools it. Only standard Keras layers
are used, so a saved model loads anywhere with plain ``keras.models.load_model``.
"""
from __future__ import annotations

from pathlib import Path

import keras

from skin_lesion.errors import ConfigError, MissingFileError, UserError
from skin_lesion.model_io import BACKBONE
from skin_lesion.models.architectures import Architecture


def resolve_weights(weights: str | None, spec: Architecture) -> str | None:
    """``imagenet``, ``none`` or a weights file, checked against the architecture."""
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        if not spec.pretrained:
            raise ConfigError(f"{spec.name} has no ImageNet weights; use --weights none.")
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise MissingFileError(
            f"--weights {weights}: no such file. Pass imagenet, none, or the path of a "
            f"weights file for the {spec.name} backbone without its top (.h5)."
        )
    return str(path.resolve())


def simple_cnn_backbone(input_shape: tuple[int, int, int], synchronized: bool = False) -> keras.Model:
    """A small VGG-style CNN for CPU runs and training from scratch.

    BatchNormalization uses momentum 0.9 (Keras default 0.99) so its moving statistics settle
    within the few hundred steps of a small-dataset run; with 0.99 the inference-mode model
    lags far behind the training-mode one for the first epochs. With ``synchronized`` (training
    on several replicas) the batch statistics are those of the global batch, so every replica
    keeps the same moving statistics and the run matches a single-device one.
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for block, filters in enumerate((32, 64, 128, 256), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, synchronized=synchronized, name=f"bn{block}")(x)
        x = keras.layers.ReLU(name=f"relu{block}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{block}")(x)
    x = keras.layers.Conv2D(256, 3, padding="same", use_bias=False, name="conv5")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, synchronized=synchronized, name="bn5")(x)
    x = keras.layers.ReLU(name="relu5")(x)
    return keras.Model(inputs, x, name=BACKBONE)


def vgg_backbone(input_shape: tuple[int, int, int], synchronized: bool = False,
                 widths: tuple[int, ...] = (32, 64, 128, 256)) -> keras.Model:
    """A VGG-style CNN for training from scratch on a CPU at low resolution.

    Each block is two 3x3 convolutions (BatchNormalization, ReLU) and a 2x2 max pooling: two
    convolutions see a 5x5 neighbourhood at the cost of fewer parameters than one 5x5, which is
    what lets a network this small learn dermoscopic texture from 64-pixel images.
    BatchNormalization momentum is 0.9, as in :func:`simple_cnn_backbone`, and synchronized
    across replicas when ``synchronized`` (see there).
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for block, filters in enumerate(widths, start=1):
        for conv in (1, 2):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                    name=f"block{block}_conv{conv}")(x)
            x = keras.layers.BatchNormalization(momentum=0.9, synchronized=synchronized,
                                                name=f"block{block}_bn{conv}")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    return keras.Model(inputs, x, name=BACKBONE)


#: The backbones of the architectures without ImageNet weights, by table name.
SCRATCH_BACKBONES = {"simple_cnn": simple_cnn_backbone, "vgg_scratch": vgg_backbone}


def with_standard_layers(backbone: keras.Model) -> keras.Model:
    """Rebuild ``backbone`` without Keras' unregistered ``CustomScaleLayer``.

    InceptionResNetV2 adds its scaled residuals with that layer (``x0 + x1 * scale``), which
    plain ``keras.models.load_model`` cannot rebuild from an ``.h5`` file in another program.
    The same arithmetic with standard ``Rescaling`` and ``Add`` layers loads anywhere; all
    other layers, and their weights, are reused as they are.
    """
    if not any(type(layer).__name__ == "CustomScaleLayer" for layer in backbone.layers):
        return backbone

    def call(layer, *args, **kwargs):
        if type(layer).__name__ != "CustomScaleLayer":
            return layer(*args, **kwargs)
        shortcut, residual = args[0]
        scaled = keras.layers.Rescaling(layer.scale, name=f"{layer.name}_scale")(residual)
        return keras.layers.Add(name=layer.name)([shortcut, scaled])

    return keras.models.clone_model(backbone, clone_function=lambda layer: layer, call_function=call)


def make_backbone(spec: Architecture, input_shape: tuple[int, int, int],
                  weights: str | None, synchronized: bool = False) -> keras.Model:
    """The feature extractor, with ImageNet or local weights loaded if asked."""
    if not spec.pretrained:
        backbone = SCRATCH_BACKBONES[spec.name](input_shape, synchronized)
        if weights is not None:
            backbone.load_weights(weights)
        return backbone
    constructor = getattr(keras.applications, spec.keras_class)
    try:
        backbone = constructor(include_top=False, weights=weights, input_shape=input_shape)
    except Exception as error:  # keras raises bare Exceptions for failed downloads
        if weights != "imagenet":
            raise
        raise UserError(
            f"Could not load the ImageNet weights of {spec.keras_class} ({error}). Without "
            "internet access: train from scratch with --weights none, or download the "
            f"'{spec.keras_class} ... notop' weights file (keras.applications) on another machine "
            "and pass it with --weights PATH, or copy it into ~/.keras/models/."
        ) from error
    backbone = with_standard_layers(backbone)
    backbone.name = BACKBONE
    return backbone
