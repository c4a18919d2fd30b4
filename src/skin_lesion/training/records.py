"""What a run records about itself: its settings and environment, and its console log.

``training_config.json`` holds the resolved settings (``03_train.py --config`` takes the file
back and trains the same run), the command line, the git commit of the code, the library
versions, the devices and the data; ``run.log`` holds every line the console showed.
"""
from __future__ import annotations

import logging
import logging.handlers
import platform
import subprocess
import sys
from datetime import datetime
from pathlib import Path

#: Lines logged before the run folder exists are kept and written first (a few hundred at most).
BUFFERED_LINES = 10_000


def library_versions() -> dict:
    import cv2
    import keras
    import numpy as np
    import pandas as pd
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "scikit-learn": sklearn.__version__, "opencv": cv2.__version__}


def git_commit(folder: Path = Path(__file__).parent) -> dict | None:
    """The commit of the code that runs, and whether it had uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None  # not a git checkout (an installed package) or no git
    return {"commit": commit, "uncommitted_changes": dirty}


def provenance() -> dict:
    """Command line, time, code version and libraries of this process."""
    return {
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv and sys.argv[0] else [],
        "started": datetime.now().isoformat(timespec="seconds"),
        "git": git_commit(),
        "libraries": library_versions(),
    }


class RunLog:
    """Copies every log record into ``run.log``, including those before the folder existed.

    ``start()`` begins buffering at the start of training; ``attach(path)`` writes the
    buffered lines into the run folder and continues there; ``close()`` stops.
    """

    def __init__(self):
        self.buffer = logging.handlers.BufferingHandler(BUFFERED_LINES)
        self.file: logging.FileHandler | None = None
        self.formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                           datefmt="%Y-%m-%d %H:%M:%S")

    def start(self) -> "RunLog":
        logging.getLogger().addHandler(self.buffer)
        return self

    def attach(self, path: Path) -> None:
        self.file = logging.FileHandler(path, mode="a", encoding="utf-8")
        self.file.setFormatter(self.formatter)
        for record in self.buffer.buffer:
            self.file.emit(record)
        logging.getLogger().removeHandler(self.buffer)
        self.buffer.buffer.clear()
        logging.getLogger().addHandler(self.file)

    def close(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.buffer)
        if self.file is not None:
            root.removeHandler(self.file)
            self.file.close()

    def __enter__(self) -> "RunLog":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def hparams_of(settings: dict) -> dict:
    """The settings TensorBoard's HParams tab compares: numbers, flags and names, no paths."""
    paths = {"split_file", "outputs_dir", "cache_dir"}
    return {key: value for key, value in settings.items()
            if key not in paths and isinstance(value, (bool, int, float, str))}


def log_hparams(tensorboard_dir: Path, run_name: str, settings: dict, metrics: dict | None = None) -> None:
    """Record a run's settings (and, at the end, its final metrics) for the HParams plugin.

    ``tensorboard_dir`` (``RunLayout.tensorboard_dir``) is one HParams session; its epoch
    scalars (``train``/``validation`` below it) and the ``final/...`` metrics written here appear
    beside the settings, whether TensorBoard is pointed at the run's ``logs/tensorboard`` or at
    a folder of runs (``tensorboard --logdir outputs`` compares runs in its HPARAMS tab).
    """
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    with tf.summary.create_file_writer(str(tensorboard_dir)).as_default() as writer:
        if metrics is None:
            hp.hparams(hparams_of(settings), trial_id=run_name)
        for name, value in (metrics or {}).items():
            tf.summary.scalar(f"final/{name}", value, step=0)
        writer.flush()
