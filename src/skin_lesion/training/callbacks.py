"""Training callbacks that Keras does not ship.

* :class:`ValidationReport` predicts the validation split once per epoch: sensitivity and
  specificity at 0.5 into the logs, and a confusion-matrix image into TensorBoard.
* :class:`EpochRecorder` is the one record of an epoch: the learning rate in effect, a CSV row,
  TensorBoard scalars and one readable console line, all numbering epochs from 1.
* :class:`AtomicBestCheckpoint` keeps the best ``.h5`` model like ``ModelCheckpoint`` with
  ``save_best_only``, but writes it under a temporary name first and starts from the best
  value of earlier epochs when resuming.
* :class:`ResumableState` saves the patience counters of early stopping and learning-rate
  reduction, and the dropout layers' random state, after every epoch and puts them back when a
  run resumes.
"""
from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import confusion_matrix

from skin_lesion.defaults import UNTUNED_THRESHOLD
from skin_lesion.io_utils import read_json, write_json_atomic
from skin_lesion.metrics import rates_at
from skin_lesion.plots import confusion_matrix_figure, figure_to_png
from skin_lesion.tasks import BENIGN_MALIGNANT, Task

log = logging.getLogger(__name__)

#: The columns of the per-epoch CSV log, in order; ``epoch`` counts from 1.
LOG_COLUMNS = ("epoch", "learning_rate", "seconds", "loss", "accuracy", "roc_auc", "pr_auc",
               "val_loss", "val_accuracy", "val_roc_auc", "val_pr_auc", "val_sensitivity",
               "val_specificity")


def predict_locally(model: keras.Model, dataset: tf.data.Dataset) -> np.ndarray:
    """The model's outputs for every batch of ``dataset``, computed in this process alone.

    ``model.predict`` would distribute the batches over the workers of a multi-worker strategy
    and gather the results in worker order, not in the split's; this gives every worker the
    whole split in order.
    """
    call = tf.function(lambda features: model(features, training=False))
    return np.concatenate([np.asarray(call(features), np.float32) for features, _ in dataset])


class ValidationReport(keras.callbacks.Callback):
    """Per-epoch validation sensitivity and specificity at 0.5, and a confusion-matrix image."""

    def __init__(self, dataset: tf.data.Dataset, labels: np.ndarray, task: Task,
                 tensorboard_dir: Path | None):
        super().__init__()
        self.dataset = dataset
        self.labels = np.asarray(labels)
        self.task = task
        self.writer = (tf.summary.create_file_writer(str(Path(tensorboard_dir) / "validation"))
                       if tensorboard_dir else None)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        probabilities = predict_locally(self.model, self.dataset)
        score = self.task.malignant_score(probabilities)
        malignant = self.task.malignant_of_labels(self.labels)
        rates = rates_at(malignant, score, UNTUNED_THRESHOLD)
        if logs is not None:
            logs["val_sensitivity"] = rates["sensitivity"]
            logs["val_specificity"] = rates["specificity"]
        if self.writer is None:
            return
        if self.task.is_binary:
            names = BENIGN_MALIGNANT
            matrix = confusion_matrix(malignant, (score >= UNTUNED_THRESHOLD).astype(int), labels=[0, 1])
        else:
            names = self.task.classes
            matrix = confusion_matrix(self.labels, probabilities.argmax(axis=1), labels=range(len(names)))
        figure = confusion_matrix_figure(matrix, names, f"validation, epoch {epoch + 1}")
        image = tf.io.decode_png(figure_to_png(figure), channels=4)[None]
        with self.writer.as_default():
            tf.summary.image("confusion_matrix", image, step=epoch + 1)
        self.writer.flush()


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate at the optimizer's current step (schedules included)."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


def epoch_line(epoch: int, epochs: int, values: dict) -> str:
    """``epoch 3/12  loss 0.412 | val loss 0.398  ROC-AUC 0.861  PR-AUC 0.553  sens 0.91  spec 0.62
    (at 0.5)  lr 1.0e-03  58 s  * best, saved``."""
    def number(key: str, digits: int = 3) -> str:
        value = values.get(key)
        return "nan" if value is None or np.isnan(value) else f"{value:.{digits}f}"

    return (f"epoch {epoch}/{epochs}  loss {number('loss')} | val loss {number('val_loss')}  "
            f"ROC-AUC {number('val_roc_auc')}  PR-AUC {number('val_pr_auc')}  "
            f"sens {number('val_sensitivity', 2)}  spec {number('val_specificity', 2)} (at {UNTUNED_THRESHOLD})  "
            f"lr {values['learning_rate']:.1e}  {values['seconds']:.0f} s"
            + ("  * best, saved" if values.get("saved_best") else ""))


class EpochRecorder(keras.callbacks.Callback):
    """Learning rate, CSV row, TensorBoard scalars and the console line of every epoch.

    Placed before ``ReduceLROnPlateau``, it records the learning rate the epoch trained with
    (a reduction at the end of the epoch applies to the next one). Epochs count from 1 in
    every record, as on the console. ``epochs`` is the last epoch number of the run.
    """

    def __init__(self, csv_path: Path, tensorboard_dir: Path | None, epochs: int):
        super().__init__()
        self.csv_path = Path(csv_path)
        self.epochs = epochs
        self.writers = ({name: tf.summary.create_file_writer(str(Path(tensorboard_dir) / name))
                         for name in ("train", "validation")} if tensorboard_dir else {})
        self.started = time.time()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.time()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        logs["seconds"] = round(time.time() - self.started, 1)
        number = epoch + 1
        self.append_row({"epoch": number, **logs})
        for name, writer in self.writers.items():
            with writer.as_default():
                for key, value in logs.items():
                    is_val = key.startswith("val_")
                    if (name == "validation") == is_val and key not in ("seconds", "saved_best"):
                        tf.summary.scalar(f"epoch_{key.removeprefix('val_')}", value, step=number)
            writer.flush()
        log.info(epoch_line(number, self.epochs, logs))

    def append_row(self, row: dict) -> None:
        """Append one row, flushed to disk at once (a killed run keeps every finished epoch)."""
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        with open(self.csv_path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({key: row.get(key, "") for key in LOG_COLUMNS})


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Save the model with ``save`` whenever ``monitor`` improves (higher is better).

    Marks the epoch's logs with ``saved_best`` so the epoch line can say so.
    """

    def __init__(self, save: Callable[[keras.Model], None], monitor: str, best: float = -np.inf):
        super().__init__()
        self.save = save
        self.monitor = monitor
        self.best = best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None or not np.isfinite(value) or value <= self.best:
            return
        log.debug("%s improved from %.4f to %.4f", self.monitor, self.best, value)
        self.best = float(value)
        self.save(self.model)
        if logs is not None:
            logs["saved_best"] = True


class ResumableState(keras.callbacks.Callback):
    """Keep what Keras' ``BackupAndRestore`` does not across a killed and resumed run: the
    patience counters of early stopping and learning-rate reduction, and the random state of
    the dropout layers.

    Keras resets ``EarlyStopping`` and ``ReduceLROnPlateau`` in ``on_train_begin``; placed
    after them, this callback then puts back the values saved after the epoch a resumed run
    continues from. Values are kept per epoch, so a run killed between this file and Keras'
    own backup still finds the epoch the backup restores. With the data order a function of
    the epoch (``skin_lesion.data.pipeline``), a resumed run then trains exactly as the uninterrupted
    one would have.
    """

    FIELDS = ("wait", "best", "best_epoch", "cooldown_counter")

    def __init__(self, path: Path, callbacks: dict[str, keras.callbacks.Callback],
                 resume_epoch: int | None):
        super().__init__()
        self.path = Path(path)
        self.callbacks = callbacks
        self.resume_epoch = resume_epoch
        self.saved = read_json(self.path, "Callback state") if self.path.is_file() else {}

    def random_states(self) -> list:
        """The seed-generator variables of the model (dropout), in the model's layer order
        (their names are numbered per process, so only the order identifies them)."""
        return [variable for variable in self.model.variables
                if variable.path.endswith("seed_generator_state")]

    def on_train_begin(self, logs: dict | None = None) -> None:
        state = self.saved.get(str(self.resume_epoch)) if self.resume_epoch is not None else None
        if not state:
            return
        for name, callback in self.callbacks.items():
            for field, value in state["callbacks"].get(name, {}).items():
                setattr(callback, field, value)
        for variable, value in zip(self.random_states(), state["random"], strict=True):
            variable.assign(np.array(value, variable.dtype))
        log.info("Restored the early-stopping and learning-rate counters of epoch %d",
                 self.resume_epoch)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.saved[str(epoch + 1)] = {
            "callbacks": {name: {field: json_number(getattr(callback, field))
                                 for field in self.FIELDS if hasattr(callback, field)}
                          for name, callback in self.callbacks.items()},
            "random": [keras.ops.convert_to_numpy(variable).tolist() for variable in self.random_states()],
        }
        write_json_atomic(self.path, self.saved)


def json_number(value):
    """A counter or best value as JSON can hold it: NaN and infinities become None."""
    if value is None or isinstance(value, (int, np.integer)):
        return None if value is None else int(value)
    return float(value) if np.isfinite(value) else None
