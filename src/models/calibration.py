"""Calibrated probabilities: a small map from the model's outputs to probabilities that mean
what they say, fitted on the validation split only.

Class weights and label smoothing make a network's raw probabilities systematically off
(HAM10000's class-weighted models call far more lesions malignant than are). The map is fitted
after training, on validation predictions, and stored beside the model (``calibration.json``):

* ``platt`` (binary): ``sigmoid(a * logit + b)``, a logistic regression on the logit
  (Platt, 1999), which also undoes the shift of the prior that class weights cause;
* ``temperature``: ``softmax(log p / T)`` for 7 classes (or ``sigmoid(logit / T)`` for binary),
  one parameter that only sharpens or softens (Guo et al., 2017);
* ``none``: the identity.

Every map is monotonic in the malignant score for binary models, so a tuned threshold keeps its
meaning; thresholds are nevertheless tuned on calibrated scores.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax
from sklearn.linear_model import LogisticRegression

from src.errors import ConfigError
from src.io_utils import read_json

METHODS = ("platt", "temperature", "none")
EPSILON = 1e-7


def default_method(task: str) -> str:
    """``auto``: Platt scaling for binary models, one temperature for 7 classes."""
    return "platt" if task == "binary" else "temperature"


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration map; ``apply`` takes and returns a model's probabilities."""

    method: str = "none"
    slope: float = 1.0
    intercept: float = 0.0
    temperature: float = 1.0

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: shape (n,) for binary models, (n, 7) for 7 classes."""
        probabilities = np.asarray(probabilities, np.float64)
        if self.method == "none":
            return probabilities
        if probabilities.ndim == 1:
            logits = logit(np.clip(probabilities, EPSILON, 1 - EPSILON))
            return expit(self.slope * logits / self.temperature + self.intercept)
        return softmax(np.log(np.clip(probabilities, EPSILON, 1)) / self.temperature, axis=1)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Calibration":
        return cls(str(values["method"]), float(values.get("slope", 1.0)),
                   float(values.get("intercept", 0.0)), float(values.get("temperature", 1.0)))

    @classmethod
    def from_file(cls, path: Path) -> "Calibration":
        """A ``calibration.json``; the identity where there is none (older or copied models)."""
        return cls.from_dict(read_json(path, "Calibration file")) if Path(path).is_file() else cls()


def negative_log_likelihood(labels: np.ndarray, probabilities: np.ndarray, temperature: float) -> float:
    """Mean cross-entropy after dividing the logits by ``temperature``."""
    if probabilities.ndim == 1:
        logits = logit(np.clip(probabilities, EPSILON, 1 - EPSILON)) / temperature
        return float(np.mean(np.logaddexp(0, logits) - labels * logits))
    logits = np.log(np.clip(probabilities, EPSILON, 1)) / temperature
    return float(-np.mean(log_softmax(logits, axis=1)[np.arange(len(labels)), labels]))


def fit_calibration(labels: np.ndarray, probabilities: np.ndarray, method: str) -> Calibration:
    """Fit ``method`` on validation labels and raw probabilities ((n,) binary, (n, 7) classes)."""
    if method not in METHODS:
        raise ConfigError(f"Unknown calibration {method!r}; choose one of {', '.join(METHODS)}.")
    labels = np.asarray(labels, int)
    probabilities = np.asarray(probabilities, np.float64)
    if method == "none":
        return Calibration()
    if method == "platt":
        if probabilities.ndim != 1:
            raise ConfigError("Platt scaling is for binary models; use temperature for 7 classes.")
        logits = logit(np.clip(probabilities, EPSILON, 1 - EPSILON))[:, None]
        regression = LogisticRegression(C=1.0).fit(logits, labels)  # mild L2: finite on separable data
        return Calibration("platt", float(regression.coef_[0, 0]), float(regression.intercept_[0]))
    result = minimize_scalar(lambda t: negative_log_likelihood(labels, probabilities, t),
                             bounds=(0.05, 20.0), method="bounded")
    return Calibration("temperature", temperature=float(result.x))
