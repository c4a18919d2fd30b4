"""``SkinLesionCNN``: the model factory.

A model is raw RGB pixels (0-255) at its input size -> the architecture's preprocessing
(standard Keras layers) -> a backbone (``skin_lesion.models.backbones``) -> global average pooling and
dropout -> [joined with the encoded patient metadata, when the model has that second input]
-> a dense layer -> a float32 output layer (one sigmoid unit for the binary task, one softmax
unit per class of the label space otherwise). Saved to ``.h5`` it loads with plain ``keras.models.load_model``.

Pretrained backbones are called in inference mode, so their BatchNormalization statistics are
never updated by the small HAM10000 batches, and their BatchNormalization layers stay frozen
when phase 2 unfreezes the top of the backbone (the Keras transfer-learning guide's recipe).
A backbone without pretrained weights trains its BatchNormalization layers normally.
"""
from __future__ import annotations

from dataclasses import dataclass

import keras

from skin_lesion.model_io import BACKBONE, IMAGE_INPUT, METADATA_INPUT, OUTPUT_LAYER, POOLED_FEATURES
from skin_lesion.models.architectures import get_architecture, resolve_defaults
from skin_lesion.models.backbones import make_backbone, resolve_weights
from skin_lesion.models.preprocessing import apply_preprocessing
from skin_lesion.tasks import Task

#: Units of the dense layer that embeds the metadata before it joins the image features.
METADATA_UNITS = 32


@dataclass
class SkinLesionCNN:
    """Builds the classifier for one architecture and task.

    ``weights`` is ``"imagenet"``, ``"none"``/None or a path to backbone weights.
    ``img_size`` overrides the architecture's native input size. ``metadata_features`` is the
    width of the encoded patient metadata (``skin_lesion.data.metadata``); with 0 the model takes the
    image alone, otherwise it has two named inputs, ``image`` and ``metadata``.
    """

    architecture: str
    task: Task
    weights: str | None = "imagenet"
    img_size: int | None = None
    dropout: float = 0.3
    dense_units: int = 256
    metadata_features: int = 0
    synchronized_batch_norm: bool = False  # several replicas: see backbones.simple_cnn_backbone

    def __post_init__(self) -> None:
        self.spec = get_architecture(self.architecture)
        self.resolved_weights = resolve_weights(self.weights, self.spec)
        self.input_size = resolve_defaults(self.spec, img_size=self.img_size)["img_size"]

    @property
    def pretrained(self) -> bool:
        """True when the backbone starts from learned weights worth protecting."""
        return self.resolved_weights is not None

    def build(self) -> keras.Model:
        """The model with its backbone frozen (phase 1)."""
        shape = (self.input_size, self.input_size, 3)
        image = keras.Input(shape, name=IMAGE_INPUT)
        x = apply_preprocessing(image, self.spec.preprocessing)
        backbone = make_backbone(self.spec, shape, self.resolved_weights, self.synchronized_batch_norm)
        backbone.trainable = False
        x = backbone(x, training=False) if self.pretrained else backbone(x)
        x = keras.layers.GlobalAveragePooling2D(name=POOLED_FEATURES)(x)
        x = keras.layers.Dropout(self.dropout, name="dropout_features")(x)
        inputs = {IMAGE_INPUT: image}
        if self.metadata_features:
            metadata = keras.Input((self.metadata_features,), name=METADATA_INPUT)
            embedded = keras.layers.Dense(METADATA_UNITS, activation="relu",
                                          name="metadata_dense")(metadata)
            x = keras.layers.Concatenate(name="fusion")([x, embedded])
            inputs[METADATA_INPUT] = metadata
        if self.dense_units:
            x = keras.layers.Dense(self.dense_units, activation="relu", name="dense")(x)
            x = keras.layers.Dropout(self.dropout, name="dropout_dense")(x)
        outputs = keras.layers.Dense(self.task.num_outputs, activation=self.task.activation,
                                     dtype="float32", name=OUTPUT_LAYER)(x)
        return keras.Model(inputs if self.metadata_features else image, outputs,
                           name=f"{self.spec.name}_{self.task.kind}")


def unfreeze_top_layers(model: keras.Model, layers: int, freeze_batch_norm: bool) -> int:
    """Make the top ``layers`` backbone layers trainable (-1: all); returns how many are.

    BatchNormalization layers stay frozen when ``freeze_batch_norm`` (pretrained backbones).
    """
    backbone = model.get_layer(BACKBONE)
    backbone.trainable = True
    cut = 0 if layers < 0 else max(len(backbone.layers) - layers, 0)
    for index, layer in enumerate(backbone.layers):
        frozen = index < cut or (freeze_batch_norm and isinstance(layer, keras.layers.BatchNormalization))
        layer.trainable = not frozen
    return sum(layer.trainable for layer in backbone.layers[cut:])


def compile_model(model: keras.Model, task: Task, learning_rate,
                  weight_decay: float = 1e-4, label_smoothing: float = 0.0,
                  jit_compile: bool | str = "auto", steps_per_execution: int = 1) -> None:
    """AdamW, the task's cross-entropy and metrics named for the logs (``val_pr_auc`` ...).

    ``learning_rate`` is a number or a Keras learning-rate schedule. With several classes the
    targets are one-hot and ROC-AUC and PR-AUC are macro averages over the classes
    (one-vs-rest).
    """
    if task.is_binary:
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
        auc_options: dict = {}
    else:
        accuracy = keras.metrics.CategoricalAccuracy(name="accuracy")
        auc_options = {"multi_label": True, "num_labels": task.num_outputs}
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
        loss=task.loss(label_smoothing),
        metrics=[
            accuracy,
            keras.metrics.AUC(name="roc_auc", **auc_options),
            keras.metrics.AUC(curve="PR", name="pr_auc", **auc_options),
        ],
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
