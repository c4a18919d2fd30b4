"""Training callbacks that Keras does not ship.

* :class:`ValidationReport` predicts the validation split once per epoch and turns that into a
  console line (confusion matrix, sensitivity, specificity), ``val_sensitivity`` and
  ``val_specificity`` in the logs (so CSVLogger and TensorBoard record them) and a
  confusion-matrix image in TensorBoard.
* :class:`AtomicBestCheckpoint` keeps the best ``.h5`` model like ``ModelCheckpoint`` with
  ``save_best_only``, but writes it under a temporary name first, so a killed run never leaves
  a half-written model, and starts from the best value of earlier epochs when resuming.
"""
from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import confusion_matrix

from src.evaluation import rates_at
from src.io_utils import atomic_path
from src.labels import class_names, malignant_of_labels, malignant_score
from src.plots import confusion_matrix_figure, figure_to_png

log = logging.getLogger(__name__)


class ValidationReport(keras.callbacks.Callback):
    """Per-epoch validation confusion matrix: console, logs and TensorBoard image."""

    def __init__(self, dataset: tf.data.Dataset, labels: np.ndarray, task: str,
                 tensorboard_dir: Path):
        super().__init__()
        self.dataset = dataset
        self.labels = np.asarray(labels)
        self.task = task
        self.writer = tf.summary.create_file_writer(str(Path(tensorboard_dir) / "confusion_matrix"))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        probabilities = self.model.predict(self.dataset, verbose=0)
        score = malignant_score(probabilities, self.task)
        malignant = malignant_of_labels(self.labels, self.task)
        rates = rates_at(malignant, score, 0.5)
        sensitivity, specificity = rates["sensitivity"], rates["specificity"]
        binary_matrix = confusion_matrix(malignant, (score >= 0.5).astype(int), labels=[0, 1])
        if logs is not None:
            logs["val_sensitivity"] = sensitivity
            logs["val_specificity"] = specificity
        if self.task == "binary":
            matrix, names = binary_matrix, class_names("binary")
        else:
            names = class_names(self.task)
            matrix = confusion_matrix(self.labels, probabilities.argmax(axis=1), labels=range(len(names)))
        (tn, fp), (fn, tp) = binary_matrix
        print(f"epoch {epoch + 1}: validation at 0.5 - sensitivity {sensitivity:.3f}, "
              f"specificity {specificity:.3f}, confusion [[TN {tn} FP {fp}] [FN {fn} TP {tp}]]",
              flush=True)
        figure = confusion_matrix_figure(matrix, names, f"validation, epoch {epoch + 1}")
        image = tf.io.decode_png(figure_to_png(figure), channels=4)[None]
        with self.writer.as_default():
            tf.summary.image("validation_confusion_matrix", image, step=epoch)
        self.writer.flush()


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Save the whole model to ``path`` (``.h5``) whenever ``monitor`` improves (higher is better)."""

    def __init__(self, path: Path, monitor: str, best: float = -np.inf):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best = best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or value <= self.best:
            return
        log.info("%s improved from %.4f to %.4f; saving %s", self.monitor, self.best, value, self.path)
        self.best = float(value)
        with atomic_path(self.path) as partial:
            self.model.save(partial)
