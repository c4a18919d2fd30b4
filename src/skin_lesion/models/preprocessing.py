"""Architecture-specific preprocessing as the first layers of the model.

A saved model then takes raw RGB pixel values (0-255) at its input size, and whoever copies the
``.h5`` file into another project needs nothing but ``keras.models.load_model``: only standard
Keras layers are used (no ``Lambda``, no custom classes). The layers compute in float32 even
under a mixed-precision policy, so the normalised inputs are as exact as
``keras.applications.<module>.preprocess_input``.
"""
from __future__ import annotations

import keras
import numpy as np

#: ImageNet statistics used by keras.applications (``imagenet_utils``).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)


def caffe_layer() -> keras.layers.Conv2D:
    """RGB to BGR and ImageNet mean subtraction as one frozen 1x1 convolution.

    The kernel is a channel permutation and the bias is minus the BGR mean, which is exactly
    ``preprocess_input`` in caffe mode (ResNet50, VGG16).
    """
    layer = keras.layers.Conv2D(3, 1, name="preprocess_caffe_bgr_mean", trainable=False,
                                dtype="float32")
    layer.build((None, None, None, 3))
    permutation = np.zeros((1, 1, 3, 3), np.float32)
    for rgb_channel, bgr_channel in ((0, 2), (1, 1), (2, 0)):
        permutation[0, 0, rgb_channel, bgr_channel] = 1.0
    layer.set_weights([permutation, -np.array(CAFFE_BGR_MEAN, np.float32)])
    return layer


def preprocessing_layers(scheme: str) -> list[keras.layers.Layer]:
    """The layers that turn raw 0-255 RGB pixels into what a backbone expects."""
    if scheme == "caffe":
        return [caffe_layer()]
    if scheme == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess_tf",
                                       dtype="float32")]
    if scheme == "torch":
        return [
            keras.layers.Rescaling(1 / 255.0, name="preprocess_torch_scale", dtype="float32"),
            keras.layers.Normalization(mean=list(TORCH_MEAN),
                                       variance=[std**2 for std in TORCH_STD],
                                       name="preprocess_torch_normalize", dtype="float32"),
        ]
    if scheme == "unit":
        return [keras.layers.Rescaling(1 / 255.0, name="preprocess_unit", dtype="float32")]
    if scheme == "builtin":
        return []
    raise ValueError(f"Unknown preprocessing scheme {scheme!r}.")


def apply_preprocessing(inputs, scheme: str):
    """Apply :func:`preprocessing_layers` to a Keras tensor."""
    outputs = inputs
    for layer in preprocessing_layers(scheme):
        outputs = layer(outputs)
    return outputs
