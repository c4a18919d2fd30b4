"""What the web app (``app.py``) needs besides its page: the models it can offer, and the
scoring of uploaded files exactly as ``scripts/06_infer.py`` and ``07_explain.py`` do it.

Nothing here imports Streamlit, so it is tested like the rest of ``skin_lesion``. Uploaded files are
written to a temporary folder and go through ``predict_paths`` and ``write_predictions``, the
functions behind ``06_infer.py``: a file gets the same score on the page as from the script, and
the page's CSV has the script's bytes (its ``path`` column holds the uploaded file names). The
Grad-CAM maps explain the predicted class, as ``07_explain.py --images`` does.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from skin_lesion.data.files import has_image_extension
from skin_lesion.data.records import task_of_record
from skin_lesion.data.images import decode_files
from skin_lesion.errors import UserError
from skin_lesion.evaluation.compare import find_runs, run_row
from skin_lesion.explanation.gradcam import gradcam, overlay
from skin_lesion.io_utils import read_json
from skin_lesion.layout import CONFIG_FILE, ModelFileLayout, open_run
from skin_lesion.models.saved import ModelFileError
from skin_lesion.serving.inference import decided_class, prediction_columns, predict_paths, write_predictions
from skin_lesion.serving.predictor import Predictor, from_model_file, from_run

#: Longest side, in pixels, of an uploaded image as the page shows it (aspect ratio kept).
PAGE_IMAGE_SIZE = 384


@dataclass(frozen=True)
class ModelChoice:
    """A model the page can offer: a run folder or a ``.h5`` file, and what it is called there.

    ``problem`` says why it cannot be used (a broken or unfinished run, a missing file); empty
    when it can.
    """

    kind: str  # "run" or "file"
    path: Path
    label: str
    problem: str = ""


def task_description(run_dir: Path) -> str:
    """What the run's model tells apart (``benign vs malignant``, ``7 diagnoses``), or ``?`` for
    a run whose record cannot say (the run's row names its problem)."""
    config = Path(run_dir) / CONFIG_FILE
    try:
        return task_of_record(read_json(config, "Training config"), str(config)).describe()
    except UserError:
        return "?"


def run_label(row: dict, task: str) -> str:
    """``simple_cnn · benign vs malignant · 2026-11-26 09:44 · test ROC-AUC 0.912``."""
    parts = [row["architecture"] or row["run"], task, (row["started"] or "date unknown").replace("T", " ")[:16]]
    if row["test_roc_auc"] is not None:
        parts.append(f"test ROC-AUC {row['test_roc_auc']:.3f}")
    return " · ".join(parts)


def run_choices(outputs_dir: Path) -> list[ModelChoice]:
    """Every run folder under ``outputs_dir``, newest first; only completed runs can be chosen.

    ``compare_runs.py``'s rows never raise for a broken folder, so a damaged run is listed with
    its reason instead of breaking the page. A missing folder holds no runs.
    """
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        return []
    rows = sorted((run_row(path, outputs_dir) for path in find_runs(outputs_dir)), key=lambda row: row["path"])
    rows.sort(key=lambda row: row["started"] or "", reverse=True)  # stable: newest first, undated last
    return [ModelChoice("run", outputs_dir / row["path"],
                        run_label(row, task_description(outputs_dir / row["path"])), run_problem(row["status"]))
            for row in rows]


def run_problem(status: str) -> str:
    """Why a run cannot be chosen ('' for a completed one)."""
    if status == "completed":
        return ""
    return "still training, or stopped before the end" if status == "running or interrupted" else status


def model_file_choices(folder: Path) -> list[ModelChoice]:
    """The ``.h5`` files in ``folder`` (the repository's ``models/``, where copied models go)."""
    folder = Path(folder)
    return [file_choice(path) for path in sorted(folder.glob("*.h5"))] if folder.is_dir() else []


def file_choice(path: Path) -> ModelChoice:
    """A model file the user pointed to; a path that is no file is offered with its problem."""
    path = Path(path)
    return ModelChoice("file", path, path.name, "" if path.is_file() else f"there is no file at {path}")


def source_files(choice: ModelChoice) -> list[Path]:
    """The files a predictor is built from: the model, its calibration and threshold."""
    if choice.kind == "run":
        run = open_run(choice.path)
        return [run.best_model, run.config, run.calibration, run.threshold]
    return ModelFileLayout(choice.path).sources


def stamp(choice: ModelChoice) -> tuple[tuple[str, int], ...]:
    """Each source file with its modification time (0 if absent): a cached predictor is
    reused only while none of them has changed (a re-tuned threshold is picked up)."""
    return tuple((str(path), path.stat().st_mtime_ns if path.is_file() else 0) for path in source_files(choice))


def predictor_for(choice: ModelChoice) -> Predictor:
    """The predictor of a run (its best model) or of a model file, as 06_infer.py builds it."""
    return from_run(open_run(choice.path)) if choice.kind == "run" else from_model_file(choice.path)


@dataclass
class ScoredImage:
    """One uploaded image: the row 06_infer.py writes for it, and the pictures the page shows.

    ``image`` is the file as the project's decoder reads it (at most PAGE_IMAGE_SIZE pixels a side),
    ``heatmap`` the Grad-CAM overlay on it; both are None for a file that could not be read, and
    the heatmap is None for a model Grad-CAM cannot explain.
    """

    name: str
    row: dict
    image: np.ndarray | None = None
    heatmap: np.ndarray | None = None

    @property
    def error(self) -> str:
        return self.row["error"]


@dataclass
class ScoredUploads:
    """All uploads: scored images in upload order, the CSV of 06_infer.py for them, and the
    names of files not scored because their format is not an image format the project reads;
    ``unexplained`` says why there are no Grad-CAM maps, if there are none."""

    images: list[ScoredImage]
    csv: bytes
    unsupported: list[str]
    unexplained: str = ""


def saved_uploads(uploads: list[tuple[str, bytes]], folder: Path) -> list[Path]:
    """Each upload as a file in ``folder``, named by its position: uploaded names may repeat or
    hold characters a file name cannot (the decoder goes by the content, not the name)."""
    paths = [folder / f"{index:05d}{Path(name).suffix.lower()}" for index, (name, _) in enumerate(uploads)]
    for path, (_, data) in zip(paths, uploads):
        path.write_bytes(data)
    return paths


def score_uploads(predictor: Predictor, uploads: list[tuple[str, bytes]],
                  patient: dict | None = None) -> ScoredUploads:
    """Score uploaded ``(file name, bytes)`` as 06_infer.py scores a folder of those files.

    ``patient`` (age, sex, localization) applies to every image, for models that use it; None
    means unknown. Files of other formats are left out, as 06_infer.py passes them over in a
    folder; files with an image extension that cannot be decoded get a row with the error.
    """
    unsupported = [name for name, _ in uploads if not has_image_extension(Path(name))]
    uploads = [(name, data) for name, data in uploads if has_image_extension(Path(name))]
    with tempfile.TemporaryDirectory(prefix="skin-lesion-app-") as folder:
        paths = saved_uploads(uploads, Path(folder))
        table = pd.DataFrame([patient or {}] * len(paths), index=range(len(paths)))
        rows = list(predict_paths(predictor, [str(path) for path in paths], table, progress=False))
        for row, path, (name, _) in zip(rows, paths, uploads):  # files are named as uploaded
            row.update(path=name, error=row["error"].replace(str(path), name))
        csv_file = Path(folder) / "predictions.csv"
        write_predictions(rows, csv_file, prediction_columns(predictor))
        images = [ScoredImage(row["path"], row) for row in rows]
        readable = [index for index, row in enumerate(rows) if not row["error"]]
        readable_paths = [paths[index] for index in readable]
        unexplained = ""
        try:
            heatmaps = explained_heatmaps(predictor, readable_paths, table.iloc[readable],
                                          [rows[index] for index in readable])
        except ModelFileError as error:  # the scores stand; only the maps are missing
            heatmaps, unexplained = [None] * len(readable), str(error)
        for index, path, heatmap in zip(readable, readable_paths, heatmaps):
            images[index].image = display_image(path)
            images[index].heatmap = None if heatmap is None else overlay(images[index].image, heatmap)
        return ScoredUploads(images, csv_file.read_bytes(), unsupported, unexplained)


def explained_heatmaps(predictor: Predictor, paths: list[Path], patient: pd.DataFrame,
                       rows: list[dict]) -> np.ndarray:
    """For each readable file, the Grad-CAM heatmap of the predicted class on the model's input
    (as 07_explain.py computes it); ``overlay`` lays it over the image at its own aspect ratio,
    so the picture is not squashed to the model's square."""
    size = predictor.img_size
    metadata, _ = predictor.encode_metadata(patient.reset_index(drop=True))
    classes = np.array([decided_class(predictor, row) for row in rows])
    heatmaps = np.zeros((len(paths), size, size), np.float32)
    for indices, images in decode_files([str(path) for path in paths], (size, size)):
        heatmaps[indices] = gradcam(predictor.model, images, None if metadata is None else metadata[indices],
                                    classes[indices])
    return heatmaps


def display_image(path: Path) -> np.ndarray:
    """The file through the project's decoder, at most PAGE_IMAGE_SIZE pixels a side, aspect kept."""
    height, width = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False).shape[:2]
    scale = min(1.0, PAGE_IMAGE_SIZE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return next(decode_files([str(path)], size))[1][0]
