"""One home for where things live on disk: data folders, the split, caches and run folders.

Every script takes its defaults from here, so a run folder always has the same shape and the
later steps find what the earlier ones wrote.
"""
from __future__ import annotations

from pathlib import Path

from src.io_utils import read_json

DATA_DIR = Path("data")
HAM10000_DIR = DATA_DIR / "HAM10000"
SAMPLE_DIR = DATA_DIR / "sample"
OUTPUTS_DIR = Path("outputs")
SPLIT_DIR = OUTPUTS_DIR / "split"
SPLIT_FILE = "split.csv"
SPLIT_SUMMARY_FILE = "split_summary.json"


def split_paths(split_dir: Path) -> tuple[Path, Path]:
    """The split table and its JSON summary inside ``split_dir``."""
    split_dir = Path(split_dir)
    return split_dir / SPLIT_FILE, split_dir / SPLIT_SUMMARY_FILE
CACHE_DIR = OUTPUTS_DIR / "cache"
RUNS_DIR = OUTPUTS_DIR / "runs"
LATEST_LINK = "latest"


class RunLayout:
    """The files of one training run folder, ``outputs/runs/<time>_<arch>_<task>/``.

    Training writes the models, the configuration, the validation probabilities, logs and
    plots; tune_threshold, evaluate and infer add their results beside them.
    """

    def __init__(self, root: Path, architecture: str):
        self.root = Path(root)
        self.architecture = architecture

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def best_model(self) -> Path:
        return self.models_dir / f"{self.architecture}_best.h5"

    @property
    def final_model(self) -> Path:
        return self.models_dir / f"{self.architecture}_final.h5"

    @property
    def config(self) -> Path:
        return self.root / "training_config.json"

    @property
    def state(self) -> Path:
        """Which phases are complete, for --resume."""
        return self.root / "checkpoints" / "state.json"

    def backup_dir(self, phase: int) -> Path:
        """Keras BackupAndRestore's folder for a phase (weights, optimizer and epoch)."""
        return self.root / "checkpoints" / f"phase{phase}_backup"

    def phase_end_weights(self, phase: int) -> Path:
        return self.root / "checkpoints" / f"phase{phase}_end.weights.h5"

    def phase_log(self, phase: int) -> Path:
        return self.root / "logs" / f"phase{phase}.csv"

    @property
    def tensorboard_dir(self) -> Path:
        return self.root / "logs" / "tensorboard"

    @property
    def val_probs(self) -> Path:
        return self.root / "val_probs.npz"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    @property
    def history_plot(self) -> Path:
        return self.plots_dir / "training_history.png"

    @property
    def threshold(self) -> Path:
        return self.root / "threshold.json"

    def test_metrics(self, tag: str = "") -> Path:
        """``tag`` tells evaluation variants apart (``_lesion``, ``_tta``), so none overwrites another."""
        return self.root / f"test_metrics{tag}.json"

    def test_predictions(self, tag: str = "") -> Path:
        return self.root / f"test_predictions{tag}.csv"

    def test_plot(self, name: str, tag: str = "") -> Path:
        return self.plots_dir / f"test_{name}{tag}.png"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"


def open_run(run_dir: Path | None, outputs_dir: Path = OUTPUTS_DIR) -> RunLayout:
    """The layout of an existing run: ``run_dir``, or the one ``outputs/latest`` points to."""
    root = Path(run_dir) if run_dir else Path(outputs_dir) / LATEST_LINK
    config = root / "training_config.json"
    if not config.is_file():
        where = f"--run-dir {run_dir}" if run_dir else f"{root} (the latest completed run)"
        raise FileNotFoundError(
            f"No training run at {where}: {config} is missing. Train one with "
            "scripts/03_train.py or pass --run-dir outputs/runs/<run>."
        )
    return RunLayout(root.resolve(), read_json(config, "Training config")["architecture"])
