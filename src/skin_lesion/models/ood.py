"""The out-of-distribution flag: is an image unlike anything the model learnt from?

A classifier scores any picture it is given, a cup of coffee as readily as a melanoma. Two checks
stand before every score:

* cheap checks of the pixels: too small to be a dermoscopic image, nearly uniform (a flat colour,
  a blank frame) or badly exposed (mostly black or blown-out white);
* the Mahalanobis distance of the model's pooled image features (Lee et al. 2018, "A simple unified
  framework for detecting out-of-distribution samples"): one Gaussian per diagnosis with a shared
  covariance (Ledoit-Wolf shrinkage, scikit-learn), fitted on the training split; an image's
  distance is to the nearest diagnosis. The threshold is a high quantile of the validation split's
  distances, so that about ``VALIDATION_FLAGGED`` of validation lesions are flagged.

The fitted detector is stored inside the model's ``.h5`` file (``save_detector``), so a copied
model keeps it; its record (method, threshold, rates) also goes into the run's record.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import h5py
import numpy as np

from skin_lesion.io_utils import atomic_path
from skin_lesion.model_io import POOLED_FEATURES

if TYPE_CHECKING:  # Keras and scikit-learn are imported where used: scoring a TFLite or ONNX
    import keras  # model with the detector imports neither (nor TensorFlow)

#: The share of validation lesions the feature threshold flags (its quantile is 1 minus this).
VALIDATION_FLAGGED = 0.01
#: What the flag adds to each image's row in predictions (06_infer.py) and test_predictions.csv.
OOD_COLUMNS = ("out_of_distribution", "ood_distance", "ood_reason")
#: Where the detector lives inside a model file.
H5_GROUP = "skin_lesion_ood"
METHOD = ("Mahalanobis distance of the pooled image features to the nearest diagnosis (Lee et al. "
          "2018; shared Ledoit-Wolf covariance fitted on the training split), plus pixel checks")


@dataclass(frozen=True)
class PixelChecks:
    """Limits no dermoscopic image comes near. In HAM10000's validation split (48x48, as the CPU
    recipe sees it) the grey-level spread is at least 6, the mean colour (channel max minus min,
    over the pixels neither near black nor near white) at least 9.7, and at most 38 % of an image's pixels are near black or white."""

    min_side: int = 64  # pixels of the original image
    min_spread: float = 4.0  # standard deviation of the grey levels (0-255)
    min_colour: float = 5.0  # mean difference between a pixel's largest and smallest channel
    max_clipped: float = 0.8  # share of pixels near black (< 10) or near white (> 245)

    def reasons(self, image: np.ndarray, original_size: tuple[int, int] | None = None) -> list[str]:
        """Why one uint8 RGB image (at the model's size) cannot be a dermoscopic image (empty when
        it may be)."""
        reasons = []
        if original_size is not None and min(original_size) < self.min_side:
            height, width = original_size
            reasons.append(f"too small ({width}x{height} pixels; under {self.min_side} a side)")
        pixels = image.astype(np.float32)
        grey = pixels.mean(axis=-1)
        exposed = (grey >= 10) & (grey <= 245)
        colour = (pixels.max(axis=-1) - pixels.min(axis=-1))[exposed]
        if grey.std() < self.min_spread:
            reasons.append("nearly uniform (no visible structure at the model's input size)")
        elif 1 - exposed.mean() > self.max_clipped:
            reasons.append("badly exposed (mostly black or white)")
        elif colour.mean() < self.min_colour:
            reasons.append("nearly without colour (dermoscopic images are in colour)")
        return reasons


@dataclass
class FeatureDistance:
    """Class-conditional Gaussians with one shared precision matrix over pooled features."""

    means: np.ndarray  # (diagnoses, features)
    precision: np.ndarray  # (features, features)

    @classmethod
    def fit(cls, features: np.ndarray, groups: np.ndarray) -> FeatureDistance:
        from sklearn.covariance import LedoitWolf

        names = np.unique(groups)
        means = np.stack([features[groups == name].mean(axis=0) for name in names])
        centred = features - means[np.searchsorted(names, groups)]
        covariance = LedoitWolf(assume_centered=True).fit(centred)
        return cls(means.astype(np.float32), covariance.precision_.astype(np.float32))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """Each row's Mahalanobis distance to the nearest mean."""
        features = np.asarray(features, np.float32)
        squared = [np.einsum("ij,jk,ik->i", features - mean, self.precision, features - mean)
                   for mean in self.means]
        return np.sqrt(np.maximum(np.min(squared, axis=0), 0.0))


@dataclass
class OODDetector:
    """The pixel checks and the feature distance with its threshold, and how they were set."""

    distance: FeatureDistance
    threshold: float
    checks: PixelChecks = field(default_factory=PixelChecks)
    record: dict = field(default_factory=dict)

    def reasons(self, images: Iterable[np.ndarray], features: np.ndarray,
                original_sizes: Iterable[tuple[int, int] | None] | None = None) -> tuple[np.ndarray, list[str]]:
        """Each image's feature distance and why it is out of distribution ("" when it is not)."""
        distances = self.distance(features)
        sizes = itertools.repeat(None) if original_sizes is None else original_sizes
        reasons = []
        for image, size, distance in zip(images, sizes, distances):
            found = self.checks.reasons(image, size)
            if distance > self.threshold:
                found.append(f"unlike the training images (feature distance {distance:.1f} > {self.threshold:.1f})")
            reasons.append("; ".join(found))
        return distances, reasons


def with_features(model: keras.Model) -> keras.Model | None:
    """The model with its pooled image features as a second output, so one pass gives both
    (an ensemble's: its members' side by side; None for a model without this project's pooled layer)."""
    import keras

    from skin_lesion.models.ensemble import with_pooled_features

    try:
        pooled = model.get_layer(POOLED_FEATURES).output
    except ValueError:
        return with_pooled_features(model)
    return keras.Model(model.inputs, [model.outputs[0], pooled])


def fit_detector(train_features: np.ndarray, train_groups: np.ndarray, train_images: Iterable[np.ndarray],
                 val_features: np.ndarray, val_images: Iterable[np.ndarray],
                 flagged: float = VALIDATION_FLAGGED) -> OODDetector:
    """Fit the feature Gaussians on the training split and the threshold on validation, and
    record the share of each split flagged (pixel checks included)."""
    distance = FeatureDistance.fit(train_features, np.asarray(train_groups))
    detector = OODDetector(distance, float(np.quantile(distance(val_features), 1 - flagged)))

    def share(images: Iterable[np.ndarray], features: np.ndarray) -> float:
        return float(np.mean([bool(reason) for reason in detector.reasons(images, features)[1]]))

    detector.record = {
        "method": METHOD, "threshold": detector.threshold, "target_validation_flagged": flagged,
        "feature_dimensions": int(train_features.shape[1]), "diagnoses": int(len(distance.means)),
        "pixel_checks": asdict(detector.checks),
        "flagged": {"train": share(train_images, train_features), "val": share(val_images, val_features)},
        "fitted_on": {"train": int(len(train_features)), "val": int(len(val_features))},
    }
    return detector


def save_detector(model_file: Path, detector: OODDetector) -> None:
    """Add the detector to a saved ``.h5`` model (atomically; Keras ignores the extra group)."""
    with atomic_path(model_file) as partial:
        Path(partial).write_bytes(Path(model_file).read_bytes())
        with h5py.File(partial, "a") as handle:
            if H5_GROUP in handle:
                del handle[H5_GROUP]
            group = handle.create_group(H5_GROUP)
            group.create_dataset("means", data=detector.distance.means)
            group.create_dataset("precision", data=detector.distance.precision)
            group.attrs["record"] = json.dumps({**detector.record, "pixel_checks": asdict(detector.checks)})


def load_detector(model_file: Path) -> OODDetector | None:
    """The detector stored in a model file, or None (models saved before it existed, or elsewhere)."""
    with h5py.File(model_file, "r") as handle:
        if H5_GROUP not in handle:
            return None
        group = handle[H5_GROUP]
        record = json.loads(group.attrs["record"])
        distance = FeatureDistance(group["means"][()], group["precision"][()])
    return OODDetector(distance, float(record["threshold"]), PixelChecks(**record["pixel_checks"]), record)
