"""What the web app (``app.py``) needs besides its page: the models it can offer, and the
scoring of uploaded files exactly as ``scripts/06_infer.py`` and ``07_explain.py`` do it.

Nothing here imports Streamlit, so it is tested like the rest of ``skin_lesion``. Uploaded files
stay in memory, never written to disk: their bytes go through ``predict_paths`` and the CSV writer
behind ``06_infer.py``, so a file gets the same score on the page as from the script, and the
page's CSV has the script's bytes (its ``path`` column holds the uploaded file names). The
Grad-CAM maps explain the predicted class, as ``07_explain.py --images`` does; models without
gradients here (SavedModel, TFLite, ONNX exports) are scored, and the page says why there are no maps.

Models come only from two folders fixed where the server starts (``AllowedFolders``), never from
a path typed on the page, and a file that resolves outside them (a symbolic link, ``..``) is
refused: on a shared server a visitor cannot make the app read anything else.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from skin_lesion.data.dataset import Provenance
from skin_lesion.data.files import has_image_extension
from skin_lesion.data.records import dataset_of, task_of_record
from skin_lesion.data.images import decode_and_resize, decode_files
from skin_lesion.errors import UserError
from skin_lesion.evaluation.compare import find_runs, run_row
from skin_lesion.export.description import read_description
from skin_lesion.explanation.gradcam import gradcam, overlay
from skin_lesion.io_utils import read_json
from skin_lesion.layout import CONFIG_FILE, SAVED_MODEL_FILE, ModelFileLayout, open_run
from skin_lesion.models.saved import ModelFileError, read_model_info
from skin_lesion.serving.inference import decided_class, prediction_columns, predict_paths, predictions_csv
from skin_lesion.serving.predictor import Predictor, from_model_file, from_run

#: Longest side, in pixels, of an uploaded image as the page shows it (aspect ratio kept).
PAGE_IMAGE_SIZE = 384
#: The environment variables that set the folders the page may read models from.
OUTPUTS_VARIABLE, MODELS_VARIABLE = "SKIN_LESION_OUTPUTS", "SKIN_LESION_MODELS"
#: The model files the models folder is searched for (SavedModels are folders: found by their saved_model.pb).
MODEL_FILE_PATTERNS = ("*.h5", "*.keras", "*.tflite", "*.onnx")


@dataclass(frozen=True)
class ModelChoice:
    """A model the page can offer: a run folder or a model file (a ``.h5``, or any format
    08_export.py writes, a SavedModel being a folder), and what it is called there.

    ``problem`` says why it cannot be used (a broken or unfinished run, a missing file); empty
    when it can.
    """

    kind: str  # "run" or "file"
    path: Path
    label: str
    problem: str = ""


@dataclass(frozen=True)
class AllowedFolders:
    """The only folders the page reads runs and model files from: the outputs folder (runs)
    and the models folder (copied ``.h5`` files). Set by whoever starts the server, never on
    the page."""

    outputs: Path
    models: Path

    @classmethod
    def from_environment(cls, project: Path) -> "AllowedFolders":
        """``$SKIN_LESION_OUTPUTS`` and ``$SKIN_LESION_MODELS``, else the project's ``outputs/``
        and ``models/``; a relative path starts at the project folder, wherever the server was
        started from."""
        def folder(variable: str, default: str) -> Path:
            path = Path(os.environ.get(variable) or default).expanduser()
            return path if path.is_absolute() else project / path

        return cls(folder(OUTPUTS_VARIABLE, "outputs"), folder(MODELS_VARIABLE, "models"))


def escaping_file(paths: list[Path], root: Path) -> Path | None:
    """The first of ``paths`` that, with symbolic links and ``..`` resolved, lies outside
    ``root`` (None when all lie inside): such a file is refused, whatever it is."""
    inside = Path(root).resolve()
    return next((path for path in paths if not Path(path).resolve().is_relative_to(inside)), None)


def refused_outside(choice: ModelChoice, root: Path) -> ModelChoice:
    """``choice``, with a problem that refuses it if one of its files resolves outside ``root``."""
    if choice.problem:
        return choice
    escaping = escaping_file([choice.path, *source_files(choice)], root)
    if escaping is None:
        return choice
    return replace(choice, problem=f"refused: {escaping.name} resolves outside {root} (a symbolic link or "
                                   "'..'), and this page reads nothing outside the folders it was started with")


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
    """Every run folder under ``outputs_dir``, newest first; only completed runs whose files
    all lie inside it can be chosen.

    ``compare_runs.py``'s rows never raise for a broken folder, so a damaged run is listed with
    its reason instead of breaking the page. A missing folder holds no runs.
    """
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        return []
    rows = sorted((run_row(path, outputs_dir) for path in find_runs(outputs_dir)), key=lambda row: row["path"])
    rows.sort(key=lambda row: row["started"] or "", reverse=True)  # stable: newest first, undated last
    return [refused_outside(ModelChoice("run", outputs_dir / row["path"],
                                        run_label(row, task_description(outputs_dir / row["path"])),
                                        run_problem(row["status"])), outputs_dir)
            for row in rows]


def run_problem(status: str) -> str:
    """Why a run cannot be chosen ('' for a completed one)."""
    if status == "completed":
        return ""
    return "still training, or stopped before the end" if status == "running or interrupted" else status


def model_file_choices(folder: Path) -> list[ModelChoice]:
    """The models in ``folder`` (where copied models go) and its subfolders: ``.h5`` files, a
    model in its own subfolder keeping its threshold.json and calibration.json, and exported
    models (their export folders, with the description.json); each named by its path in
    ``folder`` and refused if it or a file beside it resolves outside ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = {path for pattern in MODEL_FILE_PATTERNS for path in folder.rglob(pattern)}
    found |= {marker.parent for marker in folder.rglob(SAVED_MODEL_FILE)}
    return [refused_outside(ModelChoice("file", path, path.relative_to(folder).as_posix()), folder)
            for path in sorted(found)]


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


def trained_on(choice: ModelChoice) -> Provenance:
    """What the chosen model learnt from, as its run or its model file records it (for models
    made before they did, the dataset their label space names), so the page says it."""
    if choice.kind == "run":
        config = open_run(choice.path).config
        return dataset_of(read_json(config, "Training config"), str(config))
    if choice.path.suffix.lower() != ".h5":
        return dataset_of(read_description(choice.path)["model_info"], str(choice.path))
    return dataset_of(read_model_info(choice.path) or {}, str(choice.path))


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


def score_uploads(predictor: Predictor, uploads: list[tuple[str, bytes]],
                  patient: dict | None = None) -> ScoredUploads:
    """Score uploaded ``(file name, bytes)`` as 06_infer.py scores a folder of those files.

    ``patient`` (age, sex, localization) applies to every image, for models that use it; None
    means unknown. Files of other formats are left out, as 06_infer.py passes them over in a
    folder; files with an image extension that cannot be decoded get a row with the error.
    """
    unsupported = [name for name, _ in uploads if not has_image_extension(Path(name))]
    uploads = [(name, data) for name, data in uploads if has_image_extension(Path(name))]
    names, contents = [name for name, _ in uploads], [data for _, data in uploads]
    table = pd.DataFrame([patient or {}] * len(uploads), index=range(len(uploads)))
    rows = list(predict_paths(predictor, names, table, progress=False, contents=contents))
    images = [ScoredImage(row["path"], row) for row in rows]
    readable = [index for index, row in enumerate(rows) if not row["error"]]
    unexplained = ""
    try:
        heatmaps = explained_heatmaps(predictor, [uploads[index] for index in readable], table.iloc[readable],
                                      [rows[index] for index in readable])
    except ModelFileError as error:  # the scores stand; only the maps are missing
        heatmaps, unexplained = [None] * len(readable), str(error)
    for index, heatmap in zip(readable, heatmaps):
        images[index].image = display_image(contents[index])
        images[index].heatmap = None if heatmap is None else overlay(images[index].image, heatmap)
    return ScoredUploads(images, predictions_csv(rows, prediction_columns(predictor)), unsupported, unexplained)


def explained_heatmaps(predictor: Predictor, uploads: list[tuple[str, bytes]], patient: pd.DataFrame,
                       rows: list[dict]) -> np.ndarray:
    """For each readable upload, the Grad-CAM heatmap of the predicted class on the model's input
    (as 07_explain.py computes it); ``overlay`` lays it over the image at its own aspect ratio,
    so the picture is not squashed to the model's square."""
    model = predictor.explainable_model()
    size = predictor.img_size
    metadata, _ = predictor.encode_metadata(patient.reset_index(drop=True))
    classes = np.array([decided_class(predictor, row) for row in rows])
    heatmaps = np.zeros((len(uploads), size, size), np.float32)
    for indices, images in decode_files([name for name, _ in uploads], (size, size),
                                        contents=[data for _, data in uploads]):
        heatmaps[indices] = gradcam(model, images, None if metadata is None else metadata[indices],
                                    classes[indices])
    return heatmaps


def display_image(contents: bytes) -> np.ndarray:
    """The image through the project's decoder, at most PAGE_IMAGE_SIZE pixels a side, aspect kept."""
    height, width = tf.io.decode_image(contents, channels=3, expand_animations=False).shape[:2]
    scale = min(1.0, PAGE_IMAGE_SIZE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return decode_and_resize(tf.constant(contents), size).numpy()
