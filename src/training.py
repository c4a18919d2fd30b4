"""Two-phase transfer learning and the run folder it leaves behind.

Phase 1 trains the classification head with the backbone frozen; phase 2 unfreezes the top
layers of the backbone (BatchNormalization excluded for pretrained backbones) and goes on at a
lower learning rate. Both phases use class weights from the training split, keep the best model
by validation PR-AUC, stop early (restoring the best weights), lower the learning rate on
plateaus and log to CSV and TensorBoard. Keras' ``BackupAndRestore`` saves weights, optimizer
state and epoch after every epoch, so ``--resume`` continues a killed run where it stopped.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from src import layout
from src.architectures import get_architecture
from src.callbacks import AtomicBestCheckpoint, ValidationReport
from src.devices import DeviceSetup, configure_devices
from src.io_utils import atomic_path, read_json, sha256_file, write_json_atomic, write_text_atomic
from src.labels import check_task, class_names, labels_of, one_hot_targets
from src.model import SkinLesionCNN, compile_model, load_for_prediction, unfreeze_top_layers
from src.pipeline import Augmentation, SplitImages, load_split_images, make_dataset
from src.plots import save_figure, training_history_figure
from src.split import class_weights, read_split

log = logging.getLogger(__name__)

#: Validation metric that picks the best model and drives early stopping and LR reduction.
#: PR-AUC suits the rare positive classes of HAM10000; for 7 classes it is the macro average.
MONITOR = "val_pr_auc"


@dataclass
class TrainConfig:
    """Every setting of a training run; saved in ``training_config.json``.

    ``None`` for a learning rate, unfreeze count or image size means the architecture
    table's default (see ``resolved``).
    """

    architecture: str = "efficientnet_b0"
    task: str = "binary"
    weights: str = "imagenet"
    split_file: str = str(layout.SPLIT_DIR / layout.SPLIT_FILE)
    outputs_dir: str = str(layout.OUTPUTS_DIR)
    cache_dir: str | None = None
    epochs1: int = 10
    epochs2: int = 20
    batch_size: int = 32
    learning_rate: float | None = None
    fine_tune_learning_rate: float | None = None
    unfreeze_layers: int | None = None
    skip_phase1: bool = False
    skip_phase2: bool = False
    img_size: int | None = None
    augmentation: bool = True
    seed: int = 42
    precision: str = "auto"
    dropout: float = 0.3
    dense_units: int = 256
    weight_decay: float = 1e-4
    early_stopping_patience: int = 5
    lr_patience: int = 2

    @classmethod
    def from_sources(cls, file_values: dict, cli_values: dict, config_file: str = "") -> "TrainConfig":
        """Settings from a JSON config file, overridden by those given on the command line."""
        names = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(file_values) - names)
        if unknown:
            raise ValueError(f"Config file {config_file}: unknown setting(s) {', '.join(unknown)}; "
                             f"known settings: {', '.join(sorted(names))}.")
        return cls(**{**file_values, **cli_values})

    def resolved(self) -> "TrainConfig":
        """A copy with the architecture's defaults filled in and the values checked."""
        spec = get_architecture(self.architecture)
        check_task(self.task)
        learning_rate = self.learning_rate or spec.learning_rate
        values = dataclasses.replace(
            self,
            architecture=spec.name,
            learning_rate=learning_rate,
            fine_tune_learning_rate=self.fine_tune_learning_rate or learning_rate / 10,
            unfreeze_layers=spec.unfreeze_layers if self.unfreeze_layers is None else self.unfreeze_layers,
            img_size=self.img_size or spec.input_size,
            cache_dir=self.cache_dir or str(Path(self.outputs_dir) / "cache"),
        )
        for name in ("epochs1", "epochs2", "batch_size"):
            if getattr(values, name) < (1 if name == "batch_size" else 0):
                raise ValueError(f"--{name.replace('_', '-')} must be positive; got {getattr(values, name)}.")
        if values.skip_phase1 and values.skip_phase2:
            raise ValueError("--skip-phase1 and --skip-phase2 together leave nothing to train.")
        return values


@dataclass
class TrainingData:
    train: SplitImages
    val: SplitImages
    train_labels: np.ndarray
    val_labels: np.ndarray
    class_weight: dict[int, float]
    train_dataset: tf.data.Dataset = field(repr=False)
    val_dataset: tf.data.Dataset = field(repr=False)


def load_training_data(config: TrainConfig) -> TrainingData:
    """Cache and batch the train and validation splits; labels follow ``config.task``."""
    split = read_split(Path(config.split_file))
    size = (config.img_size, config.img_size)
    train = load_split_images(split, "train", size, Path(config.cache_dir), config.split_file)
    val = load_split_images(split, "val", size, Path(config.cache_dir), config.split_file)
    train_labels = labels_of(train.table["dx"], config.task)
    val_labels = labels_of(val.table["dx"], config.task)
    augmentation = Augmentation() if config.augmentation else None
    return TrainingData(
        train, val, train_labels, val_labels, class_weights(train_labels, config.task),
        make_dataset(train, one_hot_targets(train_labels, config.task), config.batch_size,
                     training=True, augmentation=augmentation, seed=config.seed),
        make_dataset(val, one_hot_targets(val_labels, config.task), config.batch_size,
                     training=False),
    )


def new_run_dir(config: TrainConfig) -> layout.RunLayout:
    """A fresh ``outputs/runs/<time>_<arch>_<task>`` folder; never reuses an existing one."""
    runs = Path(config.outputs_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.now():%Y%m%d-%H%M%S}_{config.architecture}_{config.task}"
    for attempt in range(1, 1000):
        root = runs / (stem if attempt == 1 else f"{stem}_{attempt}")
        try:
            root.mkdir()
            return layout.RunLayout(root, config.architecture)
        except FileExistsError:
            continue
    raise RuntimeError(f"Could not create a new run folder under {runs}.")


def point_latest_at(run: layout.RunLayout, outputs_dir: Path) -> None:
    """Make ``outputs/latest`` a relative symlink to ``run`` (replaced atomically)."""
    link = Path(outputs_dir) / layout.LATEST_LINK
    target = os.path.relpath(run.root.resolve(), link.parent.resolve())
    partial = link.with_name(f".{link.name}.partial")
    if partial.is_symlink() or partial.exists():
        partial.unlink()
    partial.symlink_to(target)
    os.replace(partial, link)


def library_versions() -> dict:
    import cv2
    import sklearn

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "scikit-learn": sklearn.__version__, "opencv": cv2.__version__}


def describe_run(config: TrainConfig, data: TrainingData, setup: DeviceSetup) -> dict:
    """The ``training_config.json`` content: settings, data, preprocessing and environment."""
    spec = get_architecture(config.architecture)
    names = class_names(config.task)
    return {
        "architecture": config.architecture,
        "task": config.task,
        "class_names": list(names),
        "settings": dataclasses.asdict(config),
        "architecture_spec": spec.as_dict(),
        "preprocessing": {
            "model_input": f"raw RGB pixel values 0-255, {config.img_size}x{config.img_size}",
            "in_model": spec.preprocessing,
            "matches": f"keras.applications.{spec.keras_module}.preprocess_input"
            if spec.keras_module else "x / 255",
            "decoding": "src.images.decode_and_resize (DCT-scaled JPEG decode, area resize)",
        },
        "augmentation": Augmentation().as_dict() if config.augmentation else None,
        "split_file": str(Path(config.split_file).resolve()),
        "split_sha256": sha256_file(Path(config.split_file)),
        "images": {"train": len(data.train.table), "val": len(data.val.table)},
        "excluded_images": {**data.train.unusable, **data.val.unusable},
        "class_weights": {names[k]: v for k, v in data.class_weight.items()},
        "seeds": {"python": config.seed, "numpy": config.seed, "tensorflow": config.seed},
        "devices": setup.describe(),
        "libraries": library_versions(),
        "monitor": MONITOR,
        "status": "running",
        "started": datetime.now().isoformat(timespec="seconds"),
    }


def backup_epoch(backup_dir: Path) -> int | None:
    """The epoch a BackupAndRestore backup resumes at (Keras' own metadata file), if any."""
    metadata = Path(backup_dir) / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.is_file() else None


def read_log(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()


def trim_log(path: Path, from_epoch: int) -> None:
    """Drop logged epochs that a resumed run will train again (logged, then killed)."""
    history = read_log(path)
    if len(history) and (history["epoch"] >= from_epoch).any():
        write_text_atomic(path, history[history["epoch"] < from_epoch].to_csv(index=False))


def best_logged(run: layout.RunLayout) -> float:
    values = [read_log(run.phase_log(phase)).get(MONITOR) for phase in (1, 2)]
    values = [series.max() for series in values if series is not None and len(series)]
    return float(max(values)) if values else -np.inf


def fit_phase(model: keras.Model, phase: int, run: layout.RunLayout, config: TrainConfig,
              data: TrainingData, initial_epoch: int, epochs: int) -> int:
    """Train one phase from ``initial_epoch`` up to ``epochs`` (global epoch numbers).

    Returns the global number of epochs completed when the phase ends.
    """
    backup_dir = run.backup_dir(phase)
    resume_at = backup_epoch(backup_dir)
    trim_log(run.phase_log(phase), resume_at if resume_at is not None else initial_epoch)
    if resume_at is not None:
        log.info("Resuming phase %d at epoch %d", phase, resume_at + 1)
    callbacks = [
        keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="max", factor=0.5,
                                          patience=config.lr_patience, min_lr=1e-7, verbose=1),
        ValidationReport(data.val_dataset, data.val_labels, config.task, run.tensorboard_dir),
        AtomicBestCheckpoint(run.best_model, MONITOR, best_logged(run)),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                      patience=config.early_stopping_patience,
                                      restore_best_weights=True, verbose=1),
        keras.callbacks.CSVLogger(str(run.phase_log(phase)), append=True),
        # After the CSV row: a run killed in between repeats the epoch and trim_log drops the row.
        # The backup outlives fit() and is removed once state.json records the phase as done.
        keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True,
                                         delete_checkpoint=False),
        keras.callbacks.TensorBoard(log_dir=str(run.tensorboard_dir), write_graph=False),
    ]
    run.phase_log(phase).parent.mkdir(parents=True, exist_ok=True)
    history = model.fit(data.train_dataset, validation_data=data.val_dataset, epochs=epochs,
                        initial_epoch=initial_epoch, class_weight=data.class_weight,
                        callbacks=callbacks, shuffle=False, verbose=2)
    completed = history.epoch[-1] + 1 if history.epoch else (resume_at or initial_epoch)
    with atomic_path(run.phase_end_weights(phase), suffix=".weights.h5") as partial:
        model.save_weights(partial)  # weights and optimizer state
    return completed


def build_model(config: TrainConfig, setup: DeviceSetup, phase: int,
                initial_weights: Path | None = None) -> keras.Model:
    """The model for a phase, built and compiled inside the distribution strategy's scope.

    ``initial_weights`` (the end of phase 1) are loaded before compiling, so the new phase
    starts with a fresh optimizer at its own learning rate.
    """
    factory = SkinLesionCNN(config.architecture, config.task, config.weights, config.img_size,
                            config.dropout, config.dense_units)
    if not factory.pretrained and phase == 1:
        log.warning("The %s backbone starts from random weights (--weights none): phase 1 only "
                    "trains the head on random features; consider --skip-phase1.", config.architecture)
    with setup.strategy.scope():
        model = factory.build()
        if initial_weights is not None:
            model.load_weights(initial_weights)
        learning_rate = config.learning_rate
        if phase == 2:
            unfrozen = unfreeze_top_layers(model, config.unfreeze_layers, factory.pretrained)
            log.info("Phase 2: %d backbone layers trainable, learning rate %g", unfrozen,
                     config.fine_tune_learning_rate)
            learning_rate = config.fine_tune_learning_rate
        compile_model(model, config.task, learning_rate, config.weight_decay)
    return model


def complete_phase(run: layout.RunLayout, state: dict, phase: int, model: keras.Model) -> None:
    """Record a finished phase, then drop its resume backup (no longer needed)."""
    state[f"phase{phase}_done"] = True
    state[f"phase{phase}_trainable_weights"] = count_weights(model.trainable_weights)
    write_json_atomic(run.state, state)
    shutil.rmtree(run.backup_dir(phase), ignore_errors=True)


def count_weights(variables) -> int:
    return int(sum(np.prod(variable.shape) for variable in variables))


def run_phases(run: layout.RunLayout, config: TrainConfig, setup: DeviceSetup,
               data: TrainingData) -> keras.Model:
    """Train the phases that are not complete yet, recording progress in ``state.json``."""
    state = read_json(run.state, "Run state") if run.state.is_file() else {"completed_epochs": 0}
    model = None
    if not config.skip_phase1 and not state.get("phase1_done"):
        model = build_model(config, setup, phase=1)
        state["completed_epochs"] = fit_phase(model, 1, run, config, data, 0, config.epochs1)
        complete_phase(run, state, 1, model)
    if not config.skip_phase2 and not state.get("phase2_done"):
        phase1_weights = run.phase_end_weights(1)
        model = build_model(config, setup, 2, phase1_weights if phase1_weights.is_file() else None)
        start = state["completed_epochs"]
        state["completed_epochs"] = fit_phase(model, 2, run, config, data, start, start + config.epochs2)
        complete_phase(run, state, 2, model)
    if model is None:  # both phases were already complete: reload the last one
        last_phase = 1 if config.skip_phase2 else 2
        model = build_model(config, setup, last_phase, run.phase_end_weights(last_phase))
    return model


def save_validation_probabilities(run: layout.RunLayout, config: TrainConfig,
                                  data: TrainingData) -> None:
    """Predict the validation split with the best model and keep labels, scores and ids."""
    model = load_for_prediction(run.best_model if run.best_model.is_file() else run.final_model)
    probabilities = model.predict(data.val_dataset, verbose=0)
    if config.task == "binary":
        probabilities = probabilities[:, 0]
    with atomic_path(run.val_probs) as partial:
        np.savez(partial, labels=data.val_labels, probabilities=probabilities.astype(np.float32),
                 image_ids=data.val.table["image_id"].to_numpy(str),
                 lesion_ids=data.val.table["lesion_id"].to_numpy(str),
                 class_names=np.array(class_names(config.task)), task=np.array(config.task))


def finish_run(run: layout.RunLayout, config: TrainConfig, data: TrainingData,
               model: keras.Model, started: float) -> None:
    with atomic_path(run.final_model) as partial:
        model.save(partial)
    if not run.best_model.is_file():
        log.warning("%s never improved (NaN?); the final model stands in as the best.", MONITOR)
        with atomic_path(run.best_model) as partial:
            model.save(partial)
    save_validation_probabilities(run, config, data)
    logs = [read_log(run.phase_log(phase)) for phase in (1, 2)]
    save_figure(training_history_figure(logs), run.history_plot)
    history = pd.concat([frame for frame in logs if len(frame)], ignore_index=True)
    best_row = history.loc[history[MONITOR].idxmax()]
    description = read_json(run.config)
    state = read_json(run.state, "Run state")
    description.update({
        "status": "completed",
        "trainable_weights": {f"phase{phase}": state[f"phase{phase}_trainable_weights"]
                              for phase in (1, 2) if f"phase{phase}_trainable_weights" in state},
        "finished": datetime.now().isoformat(timespec="seconds"),
        "training_seconds": round(time.time() - started, 1),
        "epochs_completed": int(len(history)),
        "best_epoch": int(best_row["epoch"]) + 1,
        "best": {key: float(best_row[key]) for key in history.columns
                 if key.startswith("val_") and pd.notna(best_row[key])},
    })
    write_json_atomic(run.config, description)
    point_latest_at(run, Path(config.outputs_dir))
    log.info("Run complete: %s (best %s %.4f at epoch %d)", run.root, MONITOR,
             best_row[MONITOR], int(best_row["epoch"]) + 1)


def train(config: TrainConfig, devices: list[str] | None = None) -> layout.RunLayout:
    """Train a new run; returns its layout. ``devices`` lists devices to mirror over."""
    config = config.resolved()
    setup = configure_devices(config.precision, devices)
    keras.utils.set_random_seed(config.seed)  # Python, NumPy and TensorFlow
    data = load_training_data(config)
    run = new_run_dir(config)
    log.info("Run folder: %s", run.root)
    write_json_atomic(run.config, describe_run(config, data, setup))
    return _train_run(run, config, setup, data)


def resume(run_dir: Path, devices: list[str] | None = None) -> layout.RunLayout:
    """Continue an interrupted run from its last completed epoch, with its own settings."""
    run = layout.open_run(run_dir)
    description = read_json(run.config, "Training config")
    if description.get("status") == "completed":
        raise ValueError(f"Run {run.root} is already complete; nothing to resume.")
    config = TrainConfig(**description["settings"])
    setup = configure_devices(config.precision, devices)
    keras.utils.set_random_seed(config.seed)
    data = load_training_data(config)
    if sha256_file(Path(config.split_file)) != description["split_sha256"]:
        raise ValueError(f"The split file {config.split_file} changed since run {run.root} started; "
                         "it cannot be resumed on different data.")
    return _train_run(run, config, setup, data)


def _train_run(run: layout.RunLayout, config: TrainConfig, setup: DeviceSetup,
               data: TrainingData) -> layout.RunLayout:
    started = time.time()
    model = run_phases(run, config, setup, data)
    finish_run(run, config, data, model, started)
    return run
