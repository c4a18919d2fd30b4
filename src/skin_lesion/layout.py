"""One home for where things live on disk: data folders, the outputs folder and run folders.

Every script takes its defaults from here and no other module builds a path of its own, so a
run folder always has the same shape and the later steps find what the earlier ones wrote.

```
outputs/
  split/split.csv, split_summary.json      02_prepare_split.py
  cache/                                   decoded images, one .npy per split and size
  runs/<time>_<arch>_<task>/               one training run (RunLayout)
    export/<format>/                       08_export.py: the model in one format, description.json
  latest -> runs/...                       the last completed run
  model_files/<model stem>/                results for a model file passed as --model-file
```
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from skin_lesion.errors import ConfigError, MissingFileError
from skin_lesion.io_utils import read_json

DATA_DIR = Path("data")
HAM10000_DIR = DATA_DIR / "HAM10000"
SAMPLE_DIR = DATA_DIR / "sample"
OUTPUTS_DIR = Path("outputs")

SPLIT_FILE = "split.csv"
SPLIT_SUMMARY_FILE = "split_summary.json"
CONFIG_FILE = "training_config.json"
#: What travels with a model file: its calibration map and its tuned threshold.
CALIBRATION_FILE = "calibration.json"
THRESHOLD_FILE = "threshold.json"
PREDICTIONS_FILE = "predictions.csv"
EXPLAIN_DIR = "explain"
#: What travels with an exported model (08_export.py) instead: one file with all of the above.
DESCRIPTION_FILE = "description.json"
#: The file a folder holds when it is a TensorFlow SavedModel (the folder is the model).
SAVED_MODEL_FILE = "saved_model.pb"


def split_paths(split_dir: Path) -> tuple[Path, Path]:
    """The split table and its JSON summary inside ``split_dir``."""
    split_dir = Path(split_dir)
    return split_dir / SPLIT_FILE, split_dir / SPLIT_SUMMARY_FILE


def split_record(split_file: Path) -> tuple[dict, str]:
    """The summary beside a split file (empty where there is none) and its path, for errors."""
    summary_file = split_paths(Path(split_file).parent)[1]
    return (read_json(summary_file, "Split summary") if summary_file.is_file() else {}), str(summary_file)


class RunLayout:
    """The files of one training run folder, ``outputs/runs/<time>_<arch>_<task>/``.

    Training writes the model, the configuration, the validation probabilities, logs and
    plots; tune_threshold, evaluate, infer and explain add their results beside them.
    """

    def __init__(self, root: Path, architecture: str):
        self.root = Path(root)
        self.architecture = architecture

    # --- what training writes
    @property
    def best_model(self) -> Path:
        """The model of the best validation epoch: the run's model."""
        return self.root / "models" / f"{self.architecture}_best.h5"

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def run_log(self) -> Path:
        """Everything the console showed, with times."""
        return self.root / "run.log"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def state(self) -> Path:
        """Which phases are complete, for --resume."""
        return self.checkpoints_dir / "state.json"

    def backup_dir(self, phase: int) -> Path:
        """Keras BackupAndRestore's folder for a phase (weights, optimizer and epoch)."""
        return self.checkpoints_dir / f"phase{phase}_backup"

    def callback_state(self, phase: int) -> Path:
        """Early-stopping and learning-rate counters per epoch, for --resume."""
        return self.checkpoints_dir / f"phase{phase}_callbacks.json"

    def phase_end_weights(self, phase: int) -> Path:
        return self.checkpoints_dir / f"phase{phase}_end.weights.h5"

    def phase_log(self, phase: int) -> Path:
        return self.root / "logs" / f"phase{phase}.csv"

    @property
    def tensorboard_dir(self) -> Path:
        """The run's TensorBoard session, one folder below ``logs/tensorboard``: pointed at that
        folder, TensorBoard names the session by the run, and its HParams tab finds the metrics
        in ``train/`` and ``validation/`` below the session (a session at the folder it is
        pointed at is named ".", and the tab shows no metric)."""
        return self.root / "logs" / "tensorboard" / self.root.name

    @property
    def val_probs(self) -> Path:
        return self.root / "val_probs.npz"

    @property
    def calibration(self) -> Path:
        return self.root / CALIBRATION_FILE

    @property
    def metadata_encoding(self) -> Path:
        return self.root / "metadata_encoding.json"

    # --- what the later steps write
    @property
    def threshold(self) -> Path:
        return self.root / THRESHOLD_FILE

    def test_metrics(self, tag: str = "") -> Path:
        """``tag`` tells evaluation variants apart (``_lesion``, ``_tta``), so none overwrites another."""
        return self.root / f"test_metrics{tag}.json"

    def test_predictions(self, tag: str = "") -> Path:
        return self.root / f"test_predictions{tag}.csv"

    @property
    def predictions(self) -> Path:
        return self.root / PREDICTIONS_FILE

    @property
    def model_card(self) -> Path:
        return self.root / "model_card.md"

    @property
    def explain_dir(self) -> Path:
        return self.root / EXPLAIN_DIR

    @property
    def export_dir(self) -> Path:
        """``export/``: the model in other formats, one folder each (``export_format``)."""
        return self.root / "export"

    def export_format(self, name: str) -> Path:
        return self.export_dir / name

    @property
    def external_root(self) -> Path:
        return self.root / "external"

    def external_dir(self, dataset: str) -> Path:
        """``external/<dataset>/``: the model validated on another dataset (``05_evaluate.py --data-dir``)."""
        return self.external_root / dataset

    # --- figures
    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def plot(self, name: str) -> Path:
        """``plots/<name>.png``: training_history, roc_validation, threshold_sweep ..."""
        return self.plots_dir / f"{name}.png"

    def test_plot(self, name: str, tag: str = "") -> Path:
        return self.plot(f"test_{name}{tag}")


class ModelFileLayout:
    """A model file copied out of its run, and the files that go with it.

    A ``.h5``'s ``calibration.json`` and ``threshold.json`` are looked for beside the model, then
    one folder up (a run's ``models/`` folder); an exported model (08_export.py: a file, or a
    SavedModel folder) carries them in the ``description.json`` of its folder. Results for it go
    to the outputs folder (``model_files/<name>/``: the model's stem, or its export folder's name,
    ``tflite-int8``, since every export is called ``model``), never beside the model: a folder of
    copied models stays a folder of models.
    """

    def __init__(self, model_file: Path, outputs_dir: Path = OUTPUTS_DIR):
        self.model_file = Path(model_file)
        self.results_dir = Path(outputs_dir) / "model_files" / self.name

    @property
    def is_saved_model(self) -> bool:
        return (self.model_file / SAVED_MODEL_FILE).is_file()

    @property
    def description(self) -> Path:
        """Where an exported model's description is: in a SavedModel's folder, else beside the file."""
        folder = self.model_file if self.model_file.is_dir() else self.model_file.parent
        return folder / DESCRIPTION_FILE

    @property
    def name(self) -> str:
        if self.is_saved_model:
            return self.model_file.name
        return self.model_file.parent.name if self.description.is_file() else self.model_file.stem

    def require(self) -> "ModelFileLayout":
        """This layout, if the model file (or SavedModel folder) exists; else an error that says what to pass."""
        if self.model_file.is_dir() and not self.is_saved_model:
            raise MissingFileError(f"--model-file {self.model_file}: a folder without {SAVED_MODEL_FILE}, so "
                                   "not a SavedModel. Pass a model file (.h5, .keras, .tflite, .onnx) or a "
                                   "SavedModel folder, such as one under a run's export/.")
        if not self.model_file.exists():
            raise MissingFileError(f"--model-file {self.model_file}: no such file. Pass the path of a model "
                                   "(.h5, .keras, .tflite, .onnx or a SavedModel folder), such as a run's "
                                   "models/<architecture>_best.h5 or a file under its export/.")
        return self

    def found(self, name: str) -> Path | None:
        """``name`` beside the model file or one folder up, where it exists."""
        for folder in (self.model_file.parent, self.model_file.parent.parent):
            if (folder / name).is_file():
                return folder / name
        return None

    @property
    def calibration(self) -> Path | None:
        return self.found(CALIBRATION_FILE)

    @property
    def threshold(self) -> Path | None:
        return self.found(THRESHOLD_FILE)

    @property
    def sources(self) -> list[Path]:
        """The model and the files it is used with (where they would be, when absent)."""
        if self.model_file.suffix.lower() != ".h5":
            return [self.model_file, self.description]
        return [self.model_file, *(self.found(name) or self.model_file.parent / name
                                   for name in (CALIBRATION_FILE, THRESHOLD_FILE))]

    @property
    def predictions(self) -> Path:
        return self.results_dir / PREDICTIONS_FILE

    @property
    def explain_dir(self) -> Path:
        return self.results_dir / EXPLAIN_DIR


class OutputsLayout:
    """The outputs folder: the split, the image cache, the runs and the ``latest`` link."""

    def __init__(self, root: Path = OUTPUTS_DIR):
        self.root = Path(root)

    @property
    def split_dir(self) -> Path:
        return self.root / "split"

    @property
    def split_file(self) -> Path:
        return split_paths(self.split_dir)[0]

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def latest(self) -> Path:
        return self.root / "latest"

    def search_dir(self, study: str) -> Path:
        return self.root / "search" / study

    def new_run(self, architecture: str, task: str) -> RunLayout:
        """A fresh ``runs/<time>_<arch>_<task>`` folder; never reuses an existing one."""
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{datetime.now():%Y%m%d-%H%M%S}_{architecture}_{task}"
        for attempt in range(1, 1000):
            root = self.runs_dir / (stem if attempt == 1 else f"{stem}_{attempt}")
            try:
                root.mkdir()
                return RunLayout(root, architecture)
            except FileExistsError:
                continue
        raise RuntimeError(f"Could not create a new run folder under {self.runs_dir}.")

    def point_latest_at(self, run: RunLayout) -> None:
        """Make ``latest`` a relative symlink to ``run`` (replaced atomically)."""
        target = os.path.relpath(run.root.resolve(), self.root.resolve())
        partial = self.latest.with_name(f".{self.latest.name}.partial")
        if partial.is_symlink() or partial.exists():
            partial.unlink()
        partial.symlink_to(target)
        os.replace(partial, self.latest)


def open_run(run_dir: Path | None, outputs_dir: Path = OUTPUTS_DIR, flag: str = "--run-dir") -> RunLayout:
    """The layout of an existing run: ``run_dir`` (given as ``flag``), or the one
    ``outputs/latest`` points to."""
    root = Path(run_dir) if run_dir else OutputsLayout(outputs_dir).latest
    config = root / CONFIG_FILE
    if not config.is_file():
        where = f"{flag} {run_dir}" if run_dir else f"{root} (the latest completed run)"
        demo = OUTPUTS_DIR / "demo"
        hint = (f" The demo's run is in {demo}: pass --outputs-dir {demo}." if not run_dir and
                Path(outputs_dir) == OUTPUTS_DIR and OutputsLayout(demo).latest.is_dir() else "")
        raise MissingFileError(
            f"No training run at {where}: {config} is missing. Train one with "
            f"scripts/03_train.py or pass {flag} outputs/runs/<run>.{hint}"
        )
    return RunLayout(root.resolve(), read_json(config, "Training config")["architecture"])


def open_unfinished_run(run_dir: Path) -> RunLayout:
    """A run that ``--resume`` can continue: it exists and has not completed."""
    run = open_run(run_dir, flag="--resume")
    if read_json(run.config, "Training config").get("status") == "completed":
        raise ConfigError(f"--resume {run_dir}: that run is already complete; nothing to resume. "
                          "To train it again, start a new run with "
                          f"--config {run.config}.")
    return run
