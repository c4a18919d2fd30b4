"""``SkinLesionCNN``: the model factory.

A model is raw RGB pixels (0-255) at the architecture's input size -> the architecture's
preprocessing (standard Keras layers) -> a ``keras.applications`` backbone (or a small CNN)
-> global average pooling, dropout and dense layers -> a float32 output layer (one sigmoid unit
for the binary task, seven softmax units for the 7-class task). Saved to ``.h5`` it loads with
plain ``keras.models.load_model`` anywhere.

Pretrained backbones are called in inference mode, so their BatchNormalization statistics are
never updated by the small HAM10000 batches, and their BatchNormalization layers stay frozen
when phase 2 unfreezes the top of the backbone (the Keras transfer-learning guide's recipe).
A backbone without pretrained weights trains its BatchNormalization layers normally.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras

from src.architectures import Architecture, get_architecture
from src.labels import check_task, num_outputs
from src.preprocessing import apply_preprocessing

log = logging.getLogger(__name__)

BACKBONE_NAME = "backbone"


def resolve_weights(weights: str | None, spec: Architecture) -> str | None:
    """``imagenet``, ``none`` or a weights file, checked against the architecture."""
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        if not spec.pretrained:
            raise ValueError(f"{spec.name} has no ImageNet weights; use --weights none.")
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"--weights {weights}: no such file. Pass imagenet, none, or the path of a "
            f"weights file for the {spec.name} backbone without its top (.h5)."
        )
    return str(path.resolve())


def simple_cnn_backbone(input_shape: tuple[int, int, int]) -> keras.Model:
    """A small VGG-style CNN for CPU runs and training from scratch.

    BatchNormalization uses momentum 0.9 (Keras default 0.99) so its moving statistics settle
    within the few hundred steps of a small-dataset run; with 0.99 the inference-mode model
    lags far behind the training-mode one for the first epochs.
    """
    inputs = keras.Input(input_shape)
    x = inputs
    for block, filters in enumerate((32, 64, 128, 256), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{block}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{block}")(x)
        x = keras.layers.ReLU(name=f"relu{block}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{block}")(x)
    x = keras.layers.Conv2D(256, 3, padding="same", use_bias=False, name="conv5")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn5")(x)
    x = keras.layers.ReLU(name="relu5")(x)
    return keras.Model(inputs, x, name=BACKBONE_NAME)


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
                  weights: str | None) -> keras.Model:
    """The feature extractor, with ImageNet or local weights loaded if asked."""
    if not spec.pretrained:
        backbone = simple_cnn_backbone(input_shape)
        if weights is not None:
            backbone.load_weights(weights)
        return backbone
    constructor = getattr(keras.applications, spec.keras_class)
    try:
        backbone = constructor(include_top=False, weights=weights, input_shape=input_shape)
    except Exception as error:  # keras raises bare Exceptions for failed downloads
        if weights != "imagenet":
            raise
        raise RuntimeError(
            f"Could not load the ImageNet weights of {spec.keras_class} ({error}). Without "
            "internet access: train from scratch with --weights none, or download the "
            f"'{spec.keras_class} ... notop' weights file (keras.applications) on another machine "
            "and pass it with --weights PATH, or copy it into ~/.keras/models/."
        ) from error
    backbone = with_standard_layers(backbone)
    backbone.name = BACKBONE_NAME
    return backbone


@dataclass
class SkinLesionCNN:
    """Builds the classifier for one architecture and task.

    ``weights`` is ``"imagenet"``, ``"none"``/None or a path to backbone weights.
    ``img_size`` overrides the architecture's native input size.
    """

    architecture: str
    task: str = "binary"
    weights: str | None = "imagenet"
    img_size: int | None = None
    dropout: float = 0.3
    dense_units: int = 256

    def __post_init__(self) -> None:
        self.spec = get_architecture(self.architecture)
        check_task(self.task)
        self.resolved_weights = resolve_weights(self.weights, self.spec)

    @property
    def input_size(self) -> int:
        return self.img_size or self.spec.input_size

    @property
    def pretrained(self) -> bool:
        """True when the backbone starts from learned weights worth protecting."""
        return self.resolved_weights is not None

    def build(self) -> keras.Model:
        """The model with its backbone frozen (phase 1)."""
        shape = (self.input_size, self.input_size, 3)
        inputs = keras.Input(shape, name="image")
        x = apply_preprocessing(inputs, self.spec.preprocessing)
        backbone = make_backbone(self.spec, shape, self.resolved_weights)
        backbone.trainable = False
        x = backbone(x, training=False) if self.pretrained else backbone(x)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        x = keras.layers.Dropout(self.dropout, name="dropout_features")(x)
        if self.dense_units:
            x = keras.layers.Dense(self.dense_units, activation="relu", name="dense")(x)
            x = keras.layers.Dropout(self.dropout, name="dropout_dense")(x)
        activation = "sigmoid" if self.task == "binary" else "softmax"
        outputs = keras.layers.Dense(num_outputs(self.task), activation=activation,
                                     dtype="float32", name="prediction")(x)
        return keras.Model(inputs, outputs, name=f"{self.spec.name}_{self.task}")


def unfreeze_top_layers(model: keras.Model, layers: int, freeze_batch_norm: bool) -> int:
    """Make the top ``layers`` backbone layers trainable (-1: all); returns how many are.

    BatchNormalization layers stay frozen when ``freeze_batch_norm`` (pretrained backbones).
    """
    backbone = model.get_layer(BACKBONE_NAME)
    backbone.trainable = True
    cut = 0 if layers < 0 else max(len(backbone.layers) - layers, 0)
    for index, layer in enumerate(backbone.layers):
        frozen = index < cut or (freeze_batch_norm and isinstance(layer, keras.layers.BatchNormalization))
        layer.trainable = not frozen
    return sum(layer.trainable for layer in backbone.layers[cut:])


def compile_model(model: keras.Model, task: str, learning_rate: float,
                  weight_decay: float = 1e-4) -> None:
    """AdamW, the task's cross-entropy and metrics named for the logs (``val_pr_auc`` ...).

    For 7 classes the targets are one-hot; ROC-AUC and PR-AUC are macro averages over the
    classes (one-vs-rest) and precision/recall are micro averages.
    """
    if task == "binary":
        loss = keras.losses.BinaryCrossentropy()
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
        auc_options: dict = {}
    else:
        loss = keras.losses.CategoricalCrossentropy()
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
        auc_options = {"multi_label": True, "num_labels": num_outputs(task)}
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
        loss=loss,
        metrics=[
            accuracy,
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
            keras.metrics.AUC(name="roc_auc", **auc_options),
            keras.metrics.AUC(curve="PR", name="pr_auc", **auc_options),
        ],
    )


def load_for_prediction(path: Path) -> keras.Model:
    """A saved ``.h5`` model for prediction only (no optimizer or metrics to rebuild)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"Model file {path} not found; was the run completed?")
    return keras.models.load_model(path, compile=False)
