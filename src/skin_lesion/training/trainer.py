"""Two-phase transfer learning and the run folder it leaves behind.

Phase 1 trains the classification head with the backbone frozen; phase 2 starts from the best
phase-1 model, unfreezes the top layers of the backbone (BatchNormalization excluded for
pretrained backbones) and goes on at a lower learning rate. Both phases use class weights from
the training split, keep the best model by validation PR-AUC, stop early, and lower the
learning rate on plateaus or follow a cosine schedule with warm-up. Keras' ``BackupAndRestore``
saves weights, optimizer state and epoch after every epoch, and the patience counters are
saved beside it, so ``--resume`` continues a killed run exactly where it stopped.
"""
from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from skin_lesion import layout
from skin_lesion.data.records import task_of_record
from skin_lesion.data.metadata import MetadataEncoding
from skin_lesion.data.pipeline import Augmentation, SplitImages, load_split_images, make_dataset
from skin_lesion.data.dataset import Provenance
from skin_lesion.data.split import check_labels, class_weights, read_split, split_dataset_record, split_label_space
from skin_lesion.errors import ConfigError
from skin_lesion.io_utils import atomic_path, read_json, sha256_file, write_json_atomic, write_text_atomic
from skin_lesion.metrics import score_calibration
from skin_lesion.models.architectures import get_architecture
from skin_lesion.models.backbones import make_backbone, resolve_weights
from skin_lesion.models.calibration import fit_calibration
from skin_lesion.models.calibration_methods import AUTO, default_method
from skin_lesion.models.factory import SkinLesionCNN, compile_model, unfreeze_top_layers
from skin_lesion.models.ood import fit_detector, save_detector, with_features
from skin_lesion.models.saved import load_for_prediction, save_model
from skin_lesion.plots import save_figure, training_history_figure
from skin_lesion.tasks import Task
from skin_lesion.training.callbacks import (AtomicBestCheckpoint, EpochRecorder, ResumableState,
                                            ValidationReport)
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.devices import DeviceSetup, configure_devices
from skin_lesion.training.multiworker import wait_for_all_workers, worker_config, worker_run_dir
from skin_lesion.training.records import RunLog, log_hparams, provenance

log = logging.getLogger(__name__)

#: Validation metric that picks the best model and drives early stopping and LR reduction.
#: PR-AUC suits the rare positive classes of HAM10000; with several classes it is the macro average.
MONITOR = "val_pr_auc"
#: A cosine schedule decays to this fraction of its peak learning rate.
COSINE_FLOOR = 0.01
DECODING = "skin_lesion.data.images.decode_and_resize (DCT-scaled JPEG decode, area resize)"


@dataclass
class TrainingData:
    config: TrainConfig
    task: Task
    train: SplitImages
    val: SplitImages
    train_labels: np.ndarray
    val_labels: np.ndarray
    class_weight: dict[int, float] | None
    encoding: MetadataEncoding | None
    provenance: Provenance  # what the images are, from the split summary
    val_dataset: tf.data.Dataset = field(repr=False)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_labels) / self.config.batch_size)

    def train_dataset(self, first_epoch: int, last_epoch: int) -> tf.data.Dataset:
        """Training batches of the epochs ``first_epoch`` up to ``last_epoch`` (from 0)."""
        config = self.config
        return make_dataset(self.train, self.task.targets(self.train_labels),
                            config.batch_size, training=True,
                            augmentation=Augmentation() if config.augmentation else None,
                            seed=config.seed,
                            metadata=self.encoding.encode(self.train.table)[0] if self.encoding else None,
                            epochs=(first_epoch, last_epoch))


def load_training_data(config: TrainConfig, task: Task | None = None) -> TrainingData:
    """Cache and batch the train and validation splits; labels follow ``task`` (a resumed run's
    own), by default ``config.task`` over the split's label space. Synthetic data says so."""
    split = read_split(Path(config.split_file))
    task = task or Task(config.task, split_label_space(Path(config.split_file)))
    provenance = split_dataset_record(Path(config.split_file))
    if provenance.synthetic:
        log.warning(provenance.caveat())
    check_labels(split, task)
    size = (config.img_size, config.img_size)
    train = load_split_images(split, "train", size, Path(config.cache_dir), config.split_file)
    val = load_split_images(split, "val", size, Path(config.cache_dir), config.split_file)
    train_labels = task.labels(train.table["dx"])
    val_labels = task.labels(val.table["dx"])
    encoding = MetadataEncoding.fit(train.table) if config.use_metadata else None
    val_dataset = make_dataset(val, task.targets(val_labels), config.batch_size,
                               training=False, metadata=encoding.encode(val.table)[0] if encoding else None)
    return TrainingData(config, task, train, val, train_labels, val_labels,
                        class_weights(train_labels, task) if config.class_weighting else None,
                        encoding, provenance, val_dataset)


def model_info(config: TrainConfig, data: TrainingData) -> dict:
    """What a saved model file says about itself (``skin_lesion.models.saved``), what it learnt
    from included: a copied model still says so."""
    return {**data.task.as_record(), "architecture": config.architecture, "img_size": config.img_size,
            "input": "raw RGB pixel values 0-255", "decoding": DECODING,
            "metadata_encoding": data.encoding.as_dict() if data.encoding else None,
            "dataset": data.provenance.as_dict()}


def describe_run(config: TrainConfig, data: TrainingData, setup: DeviceSetup) -> dict:
    """The ``training_config.json`` content: settings, data, preprocessing and environment."""
    spec = get_architecture(config.architecture)
    names = data.task.classes
    return {
        "architecture": config.architecture,
        **data.task.as_record(),
        "settings": config.as_dict(),
        "architecture_spec": spec.as_dict(),
        "preprocessing": {
            "model_input": f"raw RGB pixel values 0-255, {config.img_size}x{config.img_size}",
            "in_model": spec.preprocessing,
            "matches": f"keras.applications.{spec.keras_module}.preprocess_input"
            if spec.keras_module else "x / 255",
            "decoding": DECODING,
        },
        "augmentation": Augmentation().as_dict() if config.augmentation else None,
        "metadata_encoding": data.encoding.as_dict() if data.encoding else None,
        "dataset": data.provenance.as_dict(),
        "split_file": config.split_file,
        "split_sha256": sha256_file(Path(config.split_file)),
        "images": {"train": len(data.train.table), "val": len(data.val.table)},
        "excluded_images": {**data.train.unusable, **data.val.unusable},
        "class_weights": {names[k]: v for k, v in data.class_weight.items()} if data.class_weight else None,
        "seeds": {"python": config.seed, "numpy": config.seed, "tensorflow": config.seed},
        "devices": setup.describe(),
        "provenance": provenance(),
        "monitor": MONITOR,
        "status": "running",
    }


def backup_epoch(backup_dir: Path) -> int | None:
    """Epochs completed according to a BackupAndRestore backup (Keras' own metadata), if any."""
    metadata = Path(backup_dir) / "training_metadata.json"
    return read_json(metadata, "Keras backup metadata")["epoch"] if metadata.is_file() else None


def read_log(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()


def trim_log(path: Path, completed: int) -> None:
    """Drop logged epochs after ``completed``: a resumed run trains them again."""
    history = read_log(path)
    if len(history) and (history["epoch"] > completed).any():
        write_text_atomic(path, history[history["epoch"] <= completed].to_csv(index=False))


def history_of(run: layout.RunLayout) -> pd.DataFrame:
    """Both phases' epoch logs, one row per epoch, with the phase."""
    logs = [read_log(run.phase_log(phase)).assign(phase=phase) for phase in (1, 2)]
    return pd.concat([frame for frame in logs if len(frame)], ignore_index=True)


def best_logged(run: layout.RunLayout) -> float:
    """The best monitored value logged so far (a resumed run must beat it to save a model)."""
    logs = [read_log(run.phase_log(phase)) for phase in (1, 2)]
    values = [frame[MONITOR].max() for frame in logs if MONITOR in frame and frame[MONITOR].notna().any()]
    return float(max(values)) if values else -np.inf


def learning_rate_for(config: TrainConfig, phase: int, steps_per_epoch: int):
    """The phase's learning rate: a number (plateau halving) or a cosine schedule with warm-up."""
    epochs, peak = config.phase_settings(phase)
    if config.schedule == "plateau":
        return peak
    total = max(epochs * steps_per_epoch, 2)
    warmup = min(round(config.warmup_epochs * steps_per_epoch), total - 1)
    if not warmup:
        return keras.optimizers.schedules.CosineDecay(peak, total, alpha=COSINE_FLOOR)
    return keras.optimizers.schedules.CosineDecay(0.0, total - warmup, alpha=COSINE_FLOOR,
                                                  warmup_target=peak, warmup_steps=warmup)


def build_model(config: TrainConfig, task: Task, setup: DeviceSetup, phase: int, steps_per_epoch: int,
                metadata_features: int, initial_weights: list[np.ndarray] | None = None) -> keras.Model:
    """The model for a phase, built and compiled inside the distribution strategy's scope.

    ``initial_weights`` (the best model of phase 1) are set before compiling, so the new phase
    starts with a fresh optimizer at its own learning rate.
    """
    factory = SkinLesionCNN(config.architecture, task, config.weights, config.img_size,
                            config.dropout, config.dense_units, metadata_features,
                            synchronized_batch_norm=setup.strategy.num_replicas_in_sync > 1)
    if not factory.pretrained and phase == 1:
        log.warning("The %s backbone starts from random weights (--weights none): phase 1 only "
                    "trains the head on random features; consider --skip-phase1.", config.architecture)
    with setup.strategy.scope():
        model = factory.build()
        if initial_weights is not None:
            model.set_weights(initial_weights)
        if phase == 2:
            unfrozen = unfreeze_top_layers(model, config.unfreeze_layers, factory.pretrained)
            log.info("Phase 2: %d backbone layers trainable, learning rate %g (%s)", unfrozen,
                     config.fine_tune_learning_rate, config.schedule)
        compile_model(model, task, learning_rate_for(config, phase, steps_per_epoch),
                      config.weight_decay, config.label_smoothing, config.jit_compile,
                      config.steps_per_execution)
    return model


def fit_phase(model: keras.Model, phase: int, run: layout.RunLayout, config: TrainConfig,
              data: TrainingData, initial_epoch: int, extra_callbacks: list) -> int:
    """Train one phase from ``initial_epoch`` (epochs completed before it); returns the
    number of epochs completed when the phase ends."""
    epochs = initial_epoch + config.phase_settings(phase)[0]
    resume_at = backup_epoch(run.backup_dir(phase))
    trim_log(run.phase_log(phase), resume_at if resume_at is not None else initial_epoch)
    if resume_at is not None:
        log.info("Resuming phase %d at epoch %d", phase, resume_at + 1)
    early_stopping = keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                                   patience=config.early_stopping_patience)
    counters = {"early_stopping": early_stopping}
    info = model_info(config, data)
    callbacks = [
        ValidationReport(data.val_dataset, data.val_labels, data.task, run.tensorboard_dir),
        AtomicBestCheckpoint(lambda best: save_model(best, run.best_model, info), MONITOR,
                             best_logged(run)),
        EpochRecorder(run.phase_log(phase), run.tensorboard_dir, config.total_epochs()),
    ]
    if config.schedule == "plateau":
        counters["plateau"] = keras.callbacks.ReduceLROnPlateau(
            monitor=MONITOR, mode="max", factor=0.5, patience=config.lr_patience, min_lr=1e-7)
        callbacks.append(counters["plateau"])
    callbacks += [
        early_stopping,
        ResumableState(run.callback_state(phase), counters, resume_at),
        # Last: a run killed before the backup repeats the epoch, and trim_log drops its row.
        # The backup outlives fit() and is removed once state.json records the phase as done.
        keras.callbacks.BackupAndRestore(str(run.backup_dir(phase)), double_checkpoint=True,
                                         delete_checkpoint=False),
        *extra_callbacks,
    ]
    start = resume_at if resume_at is not None else initial_epoch
    history = model.fit(data.train_dataset(start, epochs), steps_per_epoch=data.steps_per_epoch,
                        validation_data=data.val_dataset, epochs=epochs, initial_epoch=initial_epoch,
                        class_weight=data.class_weight, callbacks=callbacks, shuffle=False, verbose=0)
    if early_stopping.stopped_epoch:
        log.info("Early stopping after epoch %d: %s did not improve for %d epochs",
                 early_stopping.stopped_epoch + 1, MONITOR, config.early_stopping_patience)
    with atomic_path(run.phase_end_weights(phase), suffix=".weights.h5") as partial:
        model.save_weights(partial)  # weights and optimizer state
    return history.epoch[-1] + 1 if history.epoch else (resume_at or initial_epoch)


def complete_phase(run: layout.RunLayout, state: dict, phase: int, model: keras.Model) -> None:
    """Record a finished phase, then drop its resume backup (no longer needed)."""
    state[f"phase{phase}_done"] = True
    state[f"phase{phase}_trainable_weights"] = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    write_json_atomic(run.state, state)
    shutil.rmtree(run.backup_dir(phase), ignore_errors=True)


def phase_start_weights(run: layout.RunLayout, phase: int) -> list[np.ndarray] | None:
    """Phase 2 starts from the best model so far (phase 1's); phase 1 from the backbone's."""
    if phase == 1 or not run.best_model.is_file():
        return None
    return load_for_prediction(run.best_model).get_weights()


def run_phases(run: layout.RunLayout, config: TrainConfig, setup: DeviceSetup,
               data: TrainingData, extra_callbacks: list) -> keras.Model | None:
    """Train the phases that are not complete yet, recording progress in ``state.json``.

    Returns the model at the end of the last phase trained here (None if none was left).
    """
    state = read_json(run.state, "Run state") if run.state.is_file() else {"completed_epochs": 0}
    width = data.encoding.width if data.encoding else 0
    model = None
    for phase in (1, 2):
        if getattr(config, f"skip_phase{phase}") or state.get(f"phase{phase}_done"):
            continue
        model = build_model(config, data.task, setup, phase, data.steps_per_epoch, width,
                            phase_start_weights(run, phase))
        state["completed_epochs"] = fit_phase(model, phase, run, config, data,
                                              state["completed_epochs"], extra_callbacks)
        complete_phase(run, state, phase, model)
    return model


def save_validation_probabilities(run: layout.RunLayout, config: TrainConfig,
                                  data: TrainingData) -> np.ndarray:
    """Predict the validation split with the best model; keep labels, scores and ids."""
    model = load_for_prediction(run.best_model)
    probabilities = data.task.probabilities(model.predict(data.val_dataset, verbose=0))
    with atomic_path(run.val_probs) as partial:
        np.savez(partial, labels=data.val_labels, probabilities=probabilities.astype(np.float32),
                 image_ids=data.val.table["image_id"].to_numpy(str),
                 lesion_ids=data.val.table["lesion_id"].to_numpy(str),
                 class_names=np.array(data.task.classes), task=np.array(data.task.kind))
    return probabilities


def calibrate(run: layout.RunLayout, config: TrainConfig, task: Task, labels: np.ndarray,
              probabilities: np.ndarray) -> dict:
    """Fit the calibration on validation predictions; writes ``calibration.json`` (with the
    task it maps the outputs of)."""
    method = default_method(task) if config.calibration == AUTO else config.calibration
    calibration = fit_calibration(labels, probabilities, method, balanced=config.class_weighting)
    truth = task.malignant_of_labels(labels)
    record = {**calibration.as_dict(), **task.as_record(), "fitted_on": "validation split",
              "source": str(run.val_probs),
              "validation_before": score_calibration(truth, task.malignant_score(probabilities)),
              "validation_after": score_calibration(truth, task.malignant_score(calibration.apply(probabilities)))}
    write_json_atomic(run.calibration, record)
    return record


def cached_images(images: SplitImages) -> Iterator[np.ndarray]:
    """A split's cached images at the model's size, one at a time."""
    return (images.cache.images[row] for row in images.rows)


def fit_out_of_distribution(run: layout.RunLayout, config: TrainConfig, data: TrainingData) -> dict:
    """Fit the out-of-distribution flag (``skin_lesion.models.ood``) on the best model's pooled
    features of the training and validation splits, and store it in the model file."""
    model = with_features(load_for_prediction(run.best_model))
    train = make_dataset(data.train, data.task.targets(data.train_labels), config.batch_size, training=False,
                         metadata=data.encoding.encode(data.train.table)[0] if data.encoding else None)
    train_features = model.predict(train, verbose=0)[1]
    val_features = model.predict(data.val_dataset, verbose=0)[1]
    detector = fit_detector(train_features, data.train.table["dx"].to_numpy(), cached_images(data.train),
                            val_features, cached_images(data.val))
    save_detector(run.best_model, detector)
    return detector.record


def finish_model(run: layout.RunLayout, config: TrainConfig, data: TrainingData) -> tuple[dict, dict]:
    """What a run's saved model needs before the later steps: validation probabilities, the
    calibration fitted on them and the out-of-distribution flag; returns the last two records."""
    log.info("Scoring the %d validation images with the best model for calibration", len(data.val_labels))
    probabilities = save_validation_probabilities(run, config, data)
    calibration = calibrate(run, config, data.task, data.val_labels, probabilities)
    log.info("Calibration fitted (%s); fitting the out-of-distribution flag on the features of %d "
             "training and %d validation images", calibration["method"], len(data.train_labels),
             len(data.val_labels))
    out_of_distribution = fit_out_of_distribution(run, config, data)
    log.info("Out-of-distribution threshold %.2f flags %.1f %% of validation images",
             out_of_distribution["threshold"], 100 * out_of_distribution["flagged"]["val"])
    return calibration, out_of_distribution


def finish_run(run: layout.RunLayout, config: TrainConfig, data: TrainingData,
               model: keras.Model | None) -> None:
    """Best model, validation probabilities, calibration, history plot and the record."""
    if not run.best_model.is_file():
        log.warning("%s never improved (every value NaN?); the model of the last epoch is saved "
                    "as the run's model.", MONITOR)
        if model is None:
            raise ConfigError(f"Run {run.root} has no model to finish with; train it again.")
        save_model(model, run.best_model, model_info(config, data))
    log.info("Training done")
    calibration, out_of_distribution = finish_model(run, config, data)
    log.info("Writing the history plot and the run record")
    history = history_of(run)
    best = history.loc[history[MONITOR].idxmax()] if history[MONITOR].notna().any() else history.iloc[-1]
    save_figure(training_history_figure(history, int(best["epoch"]), MONITOR), run.plot("training_history"))
    description = read_json(run.config, "Training config")
    state = read_json(run.state, "Run state")
    description.update({
        "status": "completed",
        "trainable_weights": {f"phase{phase}": state[f"phase{phase}_trainable_weights"]
                              for phase in (1, 2) if f"phase{phase}_trainable_weights" in state},
        "finished": datetime.now().isoformat(timespec="seconds"),
        "training_seconds": round(float(history["seconds"].sum()), 1),
        "epochs_completed": int(len(history)),
        "best_epoch": int(best["epoch"]),
        "best": {key: float(best[key]) for key in history.columns
                 if key.startswith("val_") and pd.notna(best[key])},
        "calibration": calibration["method"],
        "out_of_distribution": out_of_distribution,
    })
    write_json_atomic(run.config, description)
    log_hparams(run.tensorboard_dir, run.root.name, config.as_dict(),
                {**description["best"], "best_epoch": float(best["epoch"])})
    layout.OutputsLayout(Path(config.outputs_dir)).point_latest_at(run)
    log.info("Run complete: %s (best %s %.4f at epoch %d)", run.root, MONITOR, best[MONITOR],
             int(best["epoch"]))


def fetch_pretrained_weights(config: TrainConfig) -> None:
    """Load ImageNet weights once (Keras downloads them into ~/.keras/models the first time);
    a machine without them and without internet fails here, with what to do."""
    if resolve_weights(config.weights, get_architecture(config.architecture)) == "imagenet":
        make_backbone(get_architecture(config.architecture), (config.img_size, config.img_size, 3), "imagenet")


def prepare(config: TrainConfig, devices: list[str] | None,
            task: Task | None = None) -> tuple[DeviceSetup, TrainingData]:
    """Devices, precision and seeds first (TensorFlow wants them early), the ImageNet weights
    (so an offline machine says so before any image is cached or run folder made), then the data."""
    setup = configure_devices(config.precision, devices, config.deterministic)
    fetch_pretrained_weights(config)  # before seeding: the seeded draws stay those of any other run
    keras.utils.set_random_seed(config.seed)  # Python, NumPy and TensorFlow
    return setup, load_training_data(config, task)


def train(config: TrainConfig, devices: list[str] | None = None,
          extra_callbacks: list | None = None, record: dict | None = None) -> layout.RunLayout:
    """Train a new run; returns its layout. ``devices`` lists devices to mirror over;
    ``extra_callbacks`` run after the project's own (a pruning callback, a test's probe);
    ``record`` adds keys to ``training_config.json`` (a search trial's study and number).
    On a worker that is not the chief, the run folder is a temporary copy (``multiworker``)."""
    config = config.resolved()
    with RunLog() as run_log:
        setup, data = prepare(config, devices)
        with worker_config(config, setup.strategy) as config:
            run = layout.OutputsLayout(Path(config.outputs_dir)).new_run(config.architecture, config.task)
            run_log.attach(run.run_log)
            log.info("Run folder: %s", run.root)
            write_json_atomic(run.config, {**describe_run(config, data, setup), **(record or {})})
            log_hparams(run.tensorboard_dir, run.root.name, config.as_dict())
            return train_run(run, config, setup, data, extra_callbacks or [])


def train_seeds(configs: list[TrainConfig]) -> list[layout.RunLayout]:
    """Train one recipe once per seed (``03_train.py --seeds``), one run folder each, one after the
    other: a recipe's figure is worth its spread over seeds, which ``compare_runs.py`` shows for
    runs that differ only in seed. A seed that fails stops the rest, and the log says which."""
    if len(configs) == 1:
        return [train(configs[0])]
    runs = []
    for number, config in enumerate(configs, start=1):
        log.info("Seed %d of %d: --seed %d", number, len(configs), config.seed)
        try:
            runs.append(train(config))
        except BaseException:
            log.error("Seed %d of %d (--seed %d) did not complete; finished: %s; not started: %s.",
                      number, len(configs), config.seed, seed_list(configs[:number - 1]),
                      seed_list(configs[number:]))
            raise
    log.info("%d runs of one recipe, seeds %s: %s (compare them with scripts/compare_runs.py)",
             len(runs), seed_list(configs), ", ".join(run.root.name for run in runs))
    return runs


def seed_list(configs: list[TrainConfig]) -> str:
    return " ".join(str(config.seed) for config in configs) or "none"


def resume(run_dir: Path, devices: list[str] | None = None,
           extra_callbacks: list | None = None) -> layout.RunLayout:
    """Continue an interrupted run from its last completed epoch, with its own settings."""
    run = layout.open_unfinished_run(run_dir)
    description = read_json(run.config, "Training config")
    config = TrainConfig.from_sources(description["settings"], {}, str(run.config))
    if sha256_file(Path(config.split_file)) != description["split_sha256"]:
        raise ConfigError(f"The split file {config.split_file} changed since run {run.root} "
                          "started; it cannot be resumed on different data.")
    with RunLog() as run_log:
        setup, data = prepare(config, devices, task_of_record(description, str(run.config)))
        with worker_config(config, setup.strategy, resume_from=run.root) as config:
            run = layout.open_run(worker_run_dir(run.root, config))
            run_log.attach(run.run_log)
            log.info("Resuming run %s", run.root)
            return train_run(run, config, setup, data, extra_callbacks or [])


def train_run(run: layout.RunLayout, config: TrainConfig, setup: DeviceSetup,
              data: TrainingData, extra_callbacks: list) -> layout.RunLayout:
    model = run_phases(run, config, setup, data, extra_callbacks)
    finish_run(run, config, data, model)
    wait_for_all_workers(setup.strategy)
    return run
