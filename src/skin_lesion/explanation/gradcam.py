"""Where the model looked: Grad-CAM and saliency maps from a saved model alone.

``gradcam(model, images) -> heatmaps`` works for every architecture of the table and for
copied ``.h5`` files. The backbone is a nested model, and ``model.get_layer('backbone').output``
is not reachable from the outer model's graph (a known Keras pitfall); instead the model's own
layers are called again on fresh inputs (``keras.models.clone_model`` with the layers reused, so
the weights are the same), recording the backbone's output — the last convolutional feature
map, since backbones are built without their top — and the input of the output layer. The class
score is the output layer's logit (before the sigmoid or softmax), so saturated probabilities
still give gradients. Models without a ``backbone`` layer use their last 4-D layer output.

Heatmaps are in [0, 1] per image, at the input size; mixed-precision models are explained in
float32.

An ensemble (``skin_lesion.models.ensemble``) has no single feature map: each member is explained
on the image as the ensemble feeds it (resized to the member's size), for the same class (the
ensemble's top class by default; a 7-class member of a binary ensemble for the sum of its malignant
classes, :func:`malignant_logit`), and the members' maps, upsampled to the ensemble's input size,
are averaged with the members' weights. The map shows where the members that make up the average
looked, each map scaled to a maximum of 1 before averaging (Grad-CAM magnitudes of different
networks are not comparable).
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import cv2
import keras
import numpy as np
import tensorflow as tf

from skin_lesion.model_io import BACKBONE, IMAGE_INPUT, METADATA_INPUT, OUTPUT_LAYER
from skin_lesion.models.ensemble import members_of
from skin_lesion.models.saved import ModelFileError

METHODS = ("gradcam", "saliency")
#: Heat 0 ... 1 in 256 RGB colours (0-1), OpenCV's jet: what :func:`overlay` paints and the
#: figures' colour bar shows, from one table so the two cannot disagree.
HEAT_COLOURS = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, ::-1] / 255


@dataclass
class GradientModel:
    """The model rewired to also return its feature map and the output layer's input."""

    model: keras.Model  # inputs -> [feature map, input of the output layer]
    output_layer: keras.layers.Layer

    def logits(self, penultimate: tf.Tensor) -> tf.Tensor:
        """The output layer's pre-activation (class scores before sigmoid/softmax)."""
        layer = self.output_layer
        return tf.matmul(tf.cast(penultimate, tf.float32), tf.cast(layer.kernel, tf.float32)) + \
            tf.cast(layer.bias, tf.float32)


#: Rewiring takes as long as building the model; a model explained again reuses its rewiring.
_REWIRED: "weakref.WeakKeyDictionary[keras.Model, GradientModel]" = weakref.WeakKeyDictionary()


def gradient_model(model: keras.Model) -> GradientModel:
    """Rewire ``model`` for Grad-CAM without touching its weights (once per model)."""
    if model not in _REWIRED:
        _REWIRED[model] = rewire(model)
    return _REWIRED[model]


def rewire(model: keras.Model) -> GradientModel:
    names = {layer.name for layer in model.layers}
    if BACKBONE not in names or OUTPUT_LAYER not in names:
        return flat_gradient_model(model)
    captured = {}

    def call(layer, *args, **kwargs):
        if layer.name == OUTPUT_LAYER:
            captured["penultimate"] = args[0]
        outputs = layer(*args, **kwargs)
        if layer.name == BACKBONE:
            captured["features"] = outputs
        return outputs

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)
    return GradientModel(keras.Model(clone.inputs, [captured["features"], captured["penultimate"]]),
                         model.get_layer(OUTPUT_LAYER))


def has_spatial_output(layer: keras.layers.Layer) -> bool:
    try:
        return len(layer.output.shape) == 4 and not isinstance(layer, keras.layers.InputLayer)
    except (AttributeError, ValueError):  # layers with several outputs or never called
        return False


def flat_gradient_model(model: keras.Model) -> GradientModel:
    """For models built elsewhere: the last layer with a 4-D output is the feature map."""
    spatial = [layer for layer in model.layers if has_spatial_output(layer)]
    dense = model.layers[-1]
    if not spatial or not isinstance(dense, keras.layers.Dense):
        raise ModelFileError(f"Model {model.name} has no convolutional feature map followed by a dense output "
                             "layer, which Grad-CAM needs; use --method saliency, which works for any model.")
    return GradientModel(keras.Model(model.inputs, [spatial[-1].output, dense.input]), dense)


def malignant_logit(logits: tf.Tensor, columns: np.ndarray) -> tf.Tensor:
    """A softmax's malignant score as one logit, (n, 1): log P(malignant classes) - log P(the others)."""
    malignant = np.isin(np.arange(logits.shape[-1]), columns)
    return (tf.reduce_logsumexp(tf.boolean_mask(logits, malignant, axis=1), axis=1, keepdims=True)
            - tf.reduce_logsumexp(tf.boolean_mask(logits, ~malignant, axis=1), axis=1, keepdims=True))


def target_logits(gradients: GradientModel, inputs, class_index: np.ndarray | None,
                  malignant_columns: np.ndarray | None = None):
    """Feature maps and, per image, the logit of the class to explain.

    Binary models, and multi-class models explained for their ``malignant_columns``' sum: the
    malignant logit, negated where ``class_index`` is 0 (benign evidence). Multi-class models: the
    logit of ``class_index`` (default: the top class).
    """
    features, penultimate = gradients.model(inputs, training=False)
    logits = gradients.logits(penultimate)
    if malignant_columns is not None:
        logits = malignant_logit(logits, malignant_columns)
    if logits.shape[-1] == 1:
        sign = 1.0 if class_index is None else tf.constant(np.where(np.asarray(class_index) == 0, -1.0, 1.0),
                                                           tf.float32)
        return features, logits[:, 0] * sign
    chosen = tf.argmax(logits, axis=1) if class_index is None else tf.constant(class_index, tf.int64)
    return features, tf.gather(logits, chosen, axis=1, batch_dims=1)


def gradcam(model: keras.Model, images: np.ndarray, metadata: np.ndarray | None = None,
            class_index: np.ndarray | None = None, malignant_columns: np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM heatmaps (n, height, width) in [0, 1] for uint8/float RGB ``images``.

    Each feature-map channel is weighted by the mean gradient of the class logit over the map;
    the ReLU of the weighted sum is upsampled (bicubic) to the input size and scaled to a maximum of 1.
    """
    if members_of(model):
        return ensemble_maps(gradcam, model, images, metadata, class_index)
    gradients = gradient_model(model)
    inputs = model_inputs(model, images, metadata)
    with tf.GradientTape() as tape:
        tape.watch(tf.nest.flatten(inputs))  # a feature map after weightless layers only is tracked too
        features, score = target_logits(gradients, inputs, class_index, malignant_columns)
    grads = tf.cast(tape.gradient(score, features), tf.float32)
    features = tf.cast(features, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1)).numpy()
    return normalise(upsample(maps, np.asarray(images).shape[1:3]))


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Coarse maps (n, h, w) at ``size`` (height, width), smoothly: bilinear interpolation turns
    a map cell into a diamond (its level lines are |x| + |y| = c), bicubic keeps them round. Its
    overshoot below zero is clipped, as negative evidence is not shown."""
    height, width = size
    return np.clip(np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_CUBIC) for m in maps]), 0, None)


def saliency(model: keras.Model, images: np.ndarray, metadata: np.ndarray | None = None,
             class_index: np.ndarray | None = None, malignant_columns: np.ndarray | None = None) -> np.ndarray:
    """Vanilla gradient saliency (n, height, width) in [0, 1]: |d class logit / d pixel|, the
    maximum over colour channels, lightly smoothed."""
    if members_of(model):
        return ensemble_maps(saliency, model, images, metadata, class_index)
    gradients = gradient_model(model)
    pixels = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(pixels)
        _, score = target_logits(gradients, model_inputs(model, pixels, metadata), class_index, malignant_columns)
    grads = tf.reduce_max(tf.abs(tape.gradient(score, pixels)), axis=-1).numpy()
    return normalise(np.stack([cv2.GaussianBlur(g, (0, 0), sigmaX=max(g.shape) / 64) for g in grads]))


def ensemble_maps(method, model: keras.Model, images: np.ndarray, metadata: np.ndarray | None,
                  class_index: np.ndarray | None) -> np.ndarray:
    """An ensemble's maps by ``method``: its members' maps for one class, weighted and averaged."""
    if class_index is None and model.outputs[0].shape[-1] > 1:
        class_index = np.argmax(model.predict_on_batch(model_inputs(model, images, metadata)), axis=1)
    size = np.asarray(images).shape[1:3]
    total = np.zeros((len(images), *size), np.float32)
    for member in members_of(model):
        pixels = np.asarray(images, np.float32) if member.resize is None else member.resize(
            tf.cast(images, tf.float32)).numpy()
        own = metadata if len(member.model.inputs) > 1 else None
        total += member.weight * upsample(method(member.model, pixels, own, class_index, member.malignant_columns),
                                          size)
    return normalise(total)


def model_inputs(model: keras.Model, images, metadata: np.ndarray | None):
    images = tf.cast(images, tf.float32)
    if len(model.inputs) == 1:
        return images
    if metadata is None:
        raise ValueError("This model has a metadata input: pass the encoded metadata.")
    return {IMAGE_INPUT: images, METADATA_INPUT: tf.convert_to_tensor(metadata, tf.float32)}


def normalise(maps: np.ndarray) -> np.ndarray:
    """Scale each map to a maximum of 1 (all-zero maps stay zero)."""
    peaks = maps.reshape(len(maps), -1).max(axis=1)
    return (maps / np.where(peaks > 0, peaks, 1)[:, None, None]).astype(np.float32)


def explain(model: keras.Model, images: np.ndarray, method: str = "gradcam",
            metadata: np.ndarray | None = None, class_index: np.ndarray | None = None) -> np.ndarray:
    """Heatmaps by ``method`` (``gradcam`` or ``saliency``)."""
    if method not in METHODS:
        raise ValueError(f"Unknown explanation method {method!r}; choose one of {', '.join(METHODS)}.")
    return (gradcam if method == "gradcam" else saliency)(model, images, metadata, class_index)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The heatmap (jet colours) over an RGB uint8 image of any size, opaque in proportion
    to the heat, so that where the model did not look the image shows as it is."""
    height, width = image.shape[:2]
    heat = cv2.resize(heatmap, (width, height), interpolation=cv2.INTER_LINEAR)
    colours = 255 * HEAT_COLOURS[np.uint8(255 * np.clip(heat, 0, 1))]
    weight = (alpha * heat)[..., None]
    return np.uint8(np.clip((1 - weight) * image + weight * colours, 0, 255))
