"""Predictions for new images: one file, a folder, or a CSV list of paths.

Files stream through the same decoder as training and evaluation (``src.images``) in batches,
so a folder of 100,000 images is never loaded at once and a file gets the same score here as in
``05_evaluate.py``. A file that cannot be read or decoded gets a row with its error and the
rest of the batch goes on.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import pandas as pd
from tqdm import tqdm

from src.data import IMAGE_EXTENSIONS, list_some
from src.images import decode_files, decoding_error
from src.io_utils import atomic_path, read_json, refuse_overwrite
from src.labels import class_names, malignant_score
from src.layout import RunLayout
from src.model import load_for_prediction
from src.threshold import tuned_threshold

log = logging.getLogger(__name__)

PATH_COLUMNS = ("path", "image_path", "filepath", "file")


def list_inputs(source: Path) -> list[str]:
    """The image paths named by ``source``: an image file, a folder or a CSV list of paths.

    Folders are read without recursion; files without an image extension are named in a
    warning, not scored. In a CSV, paths come from a ``path`` (or ``image_path``) column, or
    the first column, and relative ones are taken relative to the CSV's folder.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        others = [p.name for p in files if p.suffix.lower() not in IMAGE_EXTENSIONS]
        if others:
            log.warning("Not scored (no image extension) in %s: %s", source, list_some(others))
        if not images:
            raise ValueError(f"{source} holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
        return [str(p) for p in images]
    if source.suffix.lower() == ".csv":
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
        column = next((c for c in PATH_COLUMNS if c in table.columns), table.columns[0])
        if table.empty:
            raise ValueError(f"{source} lists no paths.")
        return [str(p if Path(p).is_absolute() else (source.parent / p)) for p in table[column]]
    if source.is_file():
        return [str(source)]
    raise FileNotFoundError(f"Input {source} does not exist; give an image, a folder or a CSV of paths.")


def predict_paths(model: keras.Model, paths: list[str], task: str, threshold: float,
                  batch_size: int = 64, progress: bool = True) -> Iterator[dict]:
    """One result row per path, in input order; undecodable files get an ``error`` row."""
    size = tuple(model.input_shape[1:3])
    names = class_names(task)
    next_index = 0
    bar = tqdm(total=len(paths), unit="img", desc="Predicting", disable=not progress)

    def error_rows(stop: int) -> Iterator[dict]:
        nonlocal next_index
        for index in range(next_index, stop):
            yield {"path": paths[index], "error": decoding_error(paths[index], size) or "unreadable"}
            bar.update(1)
        next_index = max(next_index, stop)

    for indices, images in decode_files(paths, size, batch_size):
        probabilities = model.predict_on_batch(images.astype(np.float32))
        scores = malignant_score(probabilities, task)
        for index, probability, score in zip(indices, np.asarray(probabilities), scores):
            yield from error_rows(int(index))
            row = {"path": paths[index], "error": ""}
            if task == "multiclass":
                row.update({f"prob_{name}": float(p) for name, p in zip(names, probability)})
                row["top_class"] = names[int(np.argmax(probability))]
            row["malignant_score"] = float(score)
            row["label"] = "malignant" if score >= threshold else "benign"
            yield row
            next_index = int(index) + 1
            bar.update(1)
    yield from error_rows(len(paths))
    bar.close()


def write_predictions(rows: Iterator[dict], path: Path, task: str) -> dict[str, int]:
    """Stream rows into a CSV (temporary name, renamed at the end); returns counts."""
    columns = ["path"]
    if task == "multiclass":
        columns += [f"prob_{name}" for name in class_names(task)] + ["top_class"]
    columns += ["malignant_score", "label", "error"]
    counts = {"images": 0, "errors": 0, "malignant": 0}
    with atomic_path(path) as partial, open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            counts["images"] += 1
            counts["errors"] += bool(row["error"])
            counts["malignant"] += row.get("label") == "malignant"
    return counts


def infer(run: RunLayout, source: Path, output: Path | None = None, model_choice: str = "best",
          batch_size: int = 64, force: bool = False) -> dict:
    """Score the images named by ``source`` with a run's model; returns counts and settings."""
    output = Path(output) if output else run.predictions
    refuse_overwrite(output, force, "Predictions file")
    paths = list_inputs(Path(source))
    task = read_json(run.config, "Training config")["task"]
    tuned = tuned_threshold(run)
    threshold = 0.5 if tuned is None else tuned
    model = load_for_prediction(run.best_model if model_choice == "best" else run.final_model)
    counts = write_predictions(predict_paths(model, paths, task, threshold, batch_size), output, task)
    return {**counts, "threshold": threshold, "output": str(output)}
