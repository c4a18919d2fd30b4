"""Scoring a run's own split: the images of its split file at the model's size, from the run's
image cache, optionally averaged over flips. Evaluation, explanations and the ensemble report share it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skin_lesion.data.pipeline import SplitImages, load_split_images
from skin_lesion.data.split import read_split
from skin_lesion.io_utils import read_json
from skin_lesion.layout import RunLayout
from skin_lesion.serving.predictor import Predictor

FLIPS = ("none", "horizontal", "vertical", "both")


def flipped(images: np.ndarray, flip: str) -> np.ndarray:
    """A batch of images (n, height, width, 3) mirrored left-right, top-bottom, both or not at all."""
    if flip in ("horizontal", "both"):
        images = images[:, :, ::-1]
    if flip in ("vertical", "both"):
        images = images[:, ::-1]
    return images


@dataclass
class SplitScores:
    """A split's probabilities before and after calibration (in table order; averaged over flips
    with test-time augmentation), and each image's feature distance and out-of-distribution reason
    ("" when in distribution; from the unflipped image)."""

    raw: np.ndarray
    probabilities: np.ndarray
    distances: np.ndarray
    ood_reasons: list[str]


def score_split(predictor: Predictor, images: SplitImages, batch_size: int, tta: bool = False) -> SplitScores:
    """Score a split's cached images at the model's size in one pass: probabilities and the
    out-of-distribution flag together (the files' own sizes are not checked here)."""
    metadata, _ = predictor.encode_metadata(images.table)
    raw, distances, reasons = [], [], []
    for start in range(0, len(images.rows), batch_size):
        batch = slice(start, start + batch_size)
        pixels = images.cache.images[images.rows[batch]]
        own = None if metadata is None else metadata[batch]
        assessment = predictor.assess(pixels, own)
        flips = [predictor.outputs(flipped(pixels, flip), own) for flip in FLIPS[1:]] if tta else []
        raw.append(np.mean([assessment.raw, *flips], axis=0))
        distances.append(assessment.distances)
        reasons += assessment.ood_reasons
    raw = np.concatenate(raw)
    return SplitScores(raw, predictor.calibration.apply(raw), np.concatenate(distances), reasons)


def run_split_images(run: RunLayout, split: str, size: int) -> SplitImages:
    """The images of one split of the run's split file at ``size``, from the run's image cache."""
    description = read_json(run.config, "Training config")
    split_file = description["split_file"]
    return load_split_images(read_split(Path(split_file)), split, (size, size),
                             Path(description["settings"]["cache_dir"]), split_file)
