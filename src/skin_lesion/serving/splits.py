"""Scoring a run's own split: the images of its split file at the model's size, through the
cached input pipeline, optionally averaged over flips. Evaluation and explanations share it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from skin_lesion.data.pipeline import SplitImages, load_split_images, make_dataset
from skin_lesion.data.split import read_split
from skin_lesion.io_utils import read_json
from skin_lesion.layout import RunLayout
from skin_lesion.model_io import IMAGE_INPUT
from skin_lesion.serving.predictor import Predictor

FLIPS = ("none", "horizontal", "vertical", "both")


def flipped(features, flip: str):
    """A batch's features with the image mirrored left-right, top-bottom, both or not at all."""
    image = features[IMAGE_INPUT] if isinstance(features, dict) else features
    if flip in ("horizontal", "both"):
        image = tf.image.flip_left_right(image)
    if flip in ("vertical", "both"):
        image = tf.image.flip_up_down(image)
    return {**features, IMAGE_INPUT: image} if isinstance(features, dict) else image


def predict_split(predictor: Predictor, images: SplitImages, batch_size: int,
                  tta: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Raw and calibrated probabilities for a split's images, in table order; with ``tta``
    the raw outputs are averaged over flips first."""
    metadata, _ = predictor.encode_metadata(images.table)
    dataset = make_dataset(images, np.zeros((len(images.rows), 1)), batch_size, training=False,
                           metadata=metadata)
    features = dataset.map(lambda batch, _targets: batch)
    flips = FLIPS if tta else FLIPS[:1]
    raw = np.mean([predictor.model.predict(features.map(lambda f, flip=flip: flipped(f, flip)), verbose=0)
                   for flip in flips], axis=0)
    raw = predictor.task.probabilities(raw)
    return raw, predictor.calibration.apply(raw)


def assess_split(predictor: Predictor, images: SplitImages, batch_size: int) -> tuple[np.ndarray, list[str]]:
    """Each image's feature distance and out-of-distribution reason ("" when in distribution),
    from the cached images at the model's size (the files' own sizes are not checked here)."""
    metadata, _ = predictor.encode_metadata(images.table)
    distances, reasons = [], []
    for start in range(0, len(images.rows), batch_size):
        batch = slice(start, start + batch_size)
        assessment = predictor.assess(images.cache.images[images.rows[batch]],
                                      None if metadata is None else metadata[batch])
        distances.append(assessment.distances)
        reasons += assessment.ood_reasons
    return np.concatenate(distances), reasons


def run_split_images(run: RunLayout, split: str, size: int) -> SplitImages:
    """The images of one split of the run's split file at ``size``, from the run's image cache."""
    description = read_json(run.config, "Training config")
    split_file = description["split_file"]
    return load_split_images(read_split(Path(split_file)), split, (size, size),
                             Path(description["settings"]["cache_dir"]), split_file)
