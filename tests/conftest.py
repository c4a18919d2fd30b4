"""Shared fixtures: the generated sample dataset, tiny hand-made datasets, script runner."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
import pytest

from skin_lesion.data.datasets.ham10000 import HAM10000
from skin_lesion.io_utils import exclusive
from skin_lesion.tasks import BINARY, MULTICLASS, Task

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
#: The two tasks over HAM10000's label space, for tests that build models or labels directly.
BINARY_TASK = Task(BINARY, HAM10000)
SEVEN_CLASS_TASK = Task(MULTICLASS, HAM10000)


def run_script(name: str, *args, cwd: Path | None = None, env: dict | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    """Run ``scripts/<name>`` in a fresh interpreter, as a user would from a terminal."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def write_image(path: Path, rgb=(120, 80, 60), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.zeros((size[1], size[0], 3), np.uint8) + np.array(rgb[::-1], np.uint8)
    cv2.imwrite(str(path), image)
    return path


def make_kaggle_folder(root: Path, rows: list[tuple[str, str, str]], with_images=True) -> Path:
    """A tiny Kaggle-layout dataset: rows of (lesion_id, image_id, dx)."""
    root.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows, columns=["lesion_id", "image_id", "dx"])
    table["dx_type"], table["age"], table["sex"], table["localization"] = "histo", 50.0, "male", "back"
    table.to_csv(root / "HAM10000_metadata.csv", index=False)
    if with_images:
        for i, image_id in enumerate(table["image_id"]):
            folder = "HAM10000_images_part_1" if i % 2 == 0 else "HAM10000_images_part_2"
            write_image(root / folder / f"{image_id}.jpg")
    return root


def balanced_rows(lesions_per_class: int = 6, images_per_lesion: int = 1) -> list[tuple[str, str, str]]:
    rows, n = [], 0
    for dx in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"):
        for lesion in range(lesions_per_class):
            for _ in range(images_per_lesion):
                rows.append((f"HAM_{dx}{lesion:03d}", f"ISIC_{n:07d}", dx))
                n += 1
    return rows


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """A session fixture's folder, built by the first of the parallel test processes
    (``make test`` runs pytest-xdist workers) under a lock and reused by the others."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the workers' base folders share this parent
    folder, done = root / name, root / f"{name}.done"
    with exclusive(root / f"{name}.lock"):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed half-way
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def copy_run(source: Path, destination: Path) -> Path:
    """Copy a shared run that tests in other processes may be writing into at the same time:
    their files in progress (temporary dot-names, renamed when complete) are left out."""
    return Path(shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".*")))


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Keras' dtype policy is process-wide: a test that trains in-process with ``--precision auto``
    leaves mixed_bfloat16 set, and the next test in that worker would build its models in it."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The synthetic sample dataset, generated once per test session."""
    from skin_lesion.data.sample import make_sample_dataset

    return built_once(tmp_path_factory, "sample", lambda folder: make_sample_dataset(folder / "sample")) / "sample"


def shared_dir(variable: str) -> Path:
    value = os.environ.get(variable)
    if not value or not Path(value).is_dir():
        pytest.skip(f"{variable} is not set to a HAM10000 folder (CI sets it to ../shared/data/...); "
                    "real-data test skipped")
    return Path(value)


@pytest.fixture(scope="session")
def ham10000_dir() -> Path:
    """Real HAM10000 metadata and 200x150 images (8,044 rows), from HAM10000_DIR."""
    return shared_dir("HAM10000_DIR")


@pytest.fixture(scope="session")
def ham10000_fullsize_dir() -> Path:
    """Real 600x450 HAM10000 JPEGs (150), from HAM10000_FULLSIZE_DIR."""
    return shared_dir("HAM10000_FULLSIZE_DIR")


@dataclass
class TrainedRun:
    """A trained, tuned and evaluated run on the sample data, shared by the tests of the steps
    after training (each writes only files of its own into it)."""

    outputs: Path
    run: Path
    split_file: Path


#: The shared run's settings: small and fast, yet it learns the sample data (validation ROC-AUC
#: near 1). Multi-worker tests train the same settings to compare with it; without dropout,
#: whose random masks are drawn per process, the two train the same model.
TRAINED_SETTINGS = ("--architecture", "vgg_scratch", "--weights", "none", "--img-size", 48, "--skip-phase1",
                    "--batch-size", 32, "--precision", "float32", "--early-stopping-patience", 6, "--dropout", 0)
TRAINED_EPOCHS = 6


@pytest.fixture(scope="session")
def sample_split(sample_dir, tmp_path_factory) -> Path:
    """The binary split of the sample data."""
    def build(out: Path) -> None:
        run_script("02_prepare_split.py", "--data-dir", sample_dir, "--out-dir", out)

    return built_once(tmp_path_factory, "sample_split", build) / "split.csv"


@pytest.fixture(scope="session")
def trained_run(sample_split, tmp_path_factory) -> TrainedRun:
    def build(outputs: Path) -> None:
        run_script("03_train.py", "--split-file", sample_split, "--outputs-dir", outputs, *TRAINED_SETTINGS,
                   "--epochs2", TRAINED_EPOCHS)
        run_script("04_tune_threshold.py", "--outputs-dir", outputs)
        run_script("05_evaluate.py", "--outputs-dir", outputs, "--bootstrap", 300)

    outputs = built_once(tmp_path_factory, "trained", build)
    return TrainedRun(outputs, (outputs / "latest").resolve(), sample_split)


@pytest.fixture(scope="session")
def metadata_run(sample_split, tmp_path_factory) -> TrainedRun:
    """A 7-class model with the patient-metadata input, trained briefly on the sample data."""
    def build(outputs: Path) -> None:
        run_script("03_train.py", "--split-file", sample_split, "--outputs-dir", outputs, "--architecture",
                   "simple_cnn", "--weights", "none", "--img-size", 32, "--skip-phase1", "--epochs2", 2,
                   "--task", "multiclass", "--use-metadata")

    outputs = built_once(tmp_path_factory, "metadata", build)
    return TrainedRun(outputs, (outputs / "latest").resolve(), sample_split)
