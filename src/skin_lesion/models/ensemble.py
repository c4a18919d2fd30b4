"""One Keras model that averages the probabilities of several trained models (its members).

The ensemble takes one raw RGB image at the largest member's input size (and the encoded
metadata, if any member uses it); inside the model a ``Resizing`` layer (bilinear, a standard
layer that every export format converts) brings the image to each member's own size, each member
(a sub-model with its own weights) scores it, and the weighted probabilities are added in a
layer named like any model's output. A multi-class member of a binary ensemble (the ISIC 2020
winners scored melanoma with 9-class models) gives its malignant score: a fixed ``Dense`` layer
without bias whose kernel is 1 on the malignant classes sums them. The out-of-distribution flag
reads the members' pooled features side by side (``pooled_features``). Standard layers only: the
``.h5`` loads with plain ``keras.models.load_model`` and every later step uses it as it uses a
trained model.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np

from skin_lesion.model_io import (IMAGE_INPUT, MALIGNANT_PREFIX, MEMBER_PREFIX, METADATA_INPUT, OUTPUT_LAYER,
                                  POOLED_FEATURES, RESIZE_PREFIX, WEIGHT_PREFIX)


def input_size(model: keras.Model) -> int:
    """The side of a model's square image input."""
    images = model.input[IMAGE_INPUT] if isinstance(model.input, dict) else model.input
    return int(images.shape[1])


def metadata_width(model: keras.Model) -> int:
    """The width of a model's metadata input (0 without one)."""
    return int(model.input[METADATA_INPUT].shape[-1]) if isinstance(model.input, dict) else 0


def output_width(model: keras.Model) -> int:
    """Units of a model's output: 1 for a binary model, one per class otherwise."""
    return int(model.outputs[0].shape[-1])


def malignant_sum(columns: Sequence[int], width: int, name: str) -> keras.layers.Dense:
    """A fixed layer adding the probabilities of the malignant ``columns`` of ``width`` classes."""
    if not len(columns):
        raise ValueError(f"{name}: a multi-class member of a binary ensemble needs the malignant classes.")
    layer = keras.layers.Dense(1, use_bias=False, trainable=False, dtype="float32", name=name)
    layer.build((None, width))
    kernel = np.zeros((width, 1), np.float32)
    kernel[list(columns)] = 1.0
    layer.set_weights([kernel])
    return layer


def build_ensemble(members: list[keras.Model], weights: list[float], units: int,
                   malignant_columns: Sequence[int] = (), name: str = "ensemble") -> keras.Model:
    """The weighted average of ``members`` (at least two; weights are normalised to sum to 1) with
    ``units`` outputs: in a binary ensemble (one unit) multi-class members give the sum of their
    ``malignant_columns``."""
    size = max(input_size(member) for member in members)
    width = max(metadata_width(member) for member in members)
    image = keras.Input((size, size, 3), name=IMAGE_INPUT)
    metadata = keras.Input((width,), name=METADATA_INPUT) if width else None
    scaled = []
    for index, (member, weight) in enumerate(zip(members, weights)):
        side = input_size(member)
        resized = image if side == size else keras.layers.Resizing(side, side, name=f"{RESIZE_PREFIX}{index}")(image)
        wrapped = keras.Model(member.input, [member.output, member.get_layer(POOLED_FEATURES).output],
                              name=f"{MEMBER_PREFIX}{index}")
        probabilities, _features = wrapped({IMAGE_INPUT: resized, METADATA_INPUT: metadata}
                                          if metadata_width(member) else resized)
        if output_width(member) != units:
            probabilities = malignant_sum(malignant_columns, output_width(member),
                                          f"{MALIGNANT_PREFIX}{index}")(probabilities)
        scaled.append(keras.layers.Rescaling(weight / sum(weights), name=f"{WEIGHT_PREFIX}{index}")(probabilities))
    inputs = {IMAGE_INPUT: image, METADATA_INPUT: metadata} if width else image
    return keras.Model(inputs, keras.layers.Add(name=OUTPUT_LAYER)(scaled), name=name)


@dataclass
class Member:
    """A member inside an ensemble model: its sub-model (outputs: probabilities and pooled
    features), the resizing before it (None at the ensemble's size), its weight and, for a
    multi-class member of a binary ensemble, the classes whose sum it gives (else None)."""

    model: keras.Model
    resize: keras.layers.Layer | None
    weight: float
    malignant_columns: np.ndarray | None = None


def members_of(model: keras.Model) -> list[Member]:
    """An ensemble's members (empty for any other model)."""
    names = {layer.name for layer in model.layers}
    count = sum(name.startswith(MEMBER_PREFIX) for name in names)

    def layer(prefix: str, index: int) -> keras.layers.Layer | None:
        return model.get_layer(f"{prefix}{index}") if f"{prefix}{index}" in names else None

    def columns(index: int) -> np.ndarray | None:
        summing = layer(MALIGNANT_PREFIX, index)
        return None if summing is None else np.flatnonzero(summing.get_weights()[0][:, 0])

    return [Member(layer(MEMBER_PREFIX, index), layer(RESIZE_PREFIX, index),
                   float(layer(WEIGHT_PREFIX, index).scale), columns(index)) for index in range(count)]


def with_pooled_features(model: keras.Model) -> keras.Model | None:
    """An ensemble with its members' pooled features side by side as a second output (None for
    any other model). They are no output of the saved model (a functional model keeps only the
    layers that lead to its outputs), so the model's own layers are called again on fresh inputs
    (weights shared, as ``skin_lesion.explanation.gradcam`` does), keeping each member's features."""
    if not members_of(model):
        return None
    features = []

    def call(layer, *args, **kwargs):
        outputs = layer(*args, **kwargs)
        if layer.name.startswith(MEMBER_PREFIX):
            features.append(outputs[1])
        return outputs

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    return keras.Model(clone.inputs, [clone.outputs[0], keras.layers.Concatenate(name=POOLED_FEATURES)(features)])
