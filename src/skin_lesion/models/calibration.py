"""Calibrated probabilities: a small map from the model's outputs to probabilities that mean
what they say, fitted on the validation split only.

Class weights and label smoothing make a network's raw probabilities systematically off
(HAM10000's class-weighted models call far more lesions malignant than are). The map is fitted
after training, on validation predictions, and stored beside the model (``calibration.json``):

* ``platt`` (binary): ``sigmoid(a * logit + b)``, a logistic regression on the logit
  (Platt, 1999), which also undoes the shift of the prior that class weights cause;
* ``temperature``: ``softmax(log p / T)`` for several classes (or ``sigmoid(logit / T)`` for
  binary), one parameter that only sharpens or softens (Guo et al., 2017);
* ``bias_temperature`` (several classes): ``softmax(log p / T + b)`` with one bias per class,
  bias-corrected temperature scaling (Alexandari et al., 2020). One temperature cannot undo the
  prior shift of class weights (a HAM10000 7-class model's malignant score stays off by ECE
  ~0.12); the biases can;
* ``none``: the identity.

Calibrated multi-class probabilities carry the prevalence of the training data, so their argmax
would call almost everything the commonest class (a naevus in HAM10000). The top class is therefore the class-balanced decision that class
weights trained for: the class whose probability is highest relative to its prevalence in the
data the map was fitted on (``class_prior``). Models trained without class weights, and the
other maps, whose argmax is the network's own decision, keep the plain argmax.

Every map is monotonic in the malignant score for binary models, so a tuned threshold keeps its
meaning; thresholds are nevertheless tuned on calibrated scores.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit, log_softmax, logit, softmax

from skin_lesion.errors import ConfigError
from skin_lesion.io_utils import read_json
from skin_lesion.models.calibration_methods import METHODS

log = logging.getLogger(__name__)

EPSILON = 1e-7
#: Bounds of the per-class biases (a class absent from validation must not run off to -inf).
BIAS_BOUND = 10.0


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration map; ``apply`` takes and returns a model's probabilities."""

    method: str = "none"
    slope: float = 1.0
    intercept: float = 0.0
    temperature: float = 1.0
    biases: tuple[float, ...] = ()
    class_prior: tuple[float, ...] = ()

    @property
    def fitted(self) -> bool:
        """Whether a map was fitted: only then may a score be called calibrated."""
        return self.method != "none"

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated probabilities: shape (n,) for binary models, (n, classes) otherwise."""
        probabilities = np.asarray(probabilities, np.float64)
        if self.method == "none":
            return probabilities
        if probabilities.ndim == 1:
            logits = logit(np.clip(probabilities, EPSILON, 1 - EPSILON))
            return expit(self.slope * logits / self.temperature + self.intercept)
        return softmax(scaled_logits(probabilities, self.temperature, self.biases), axis=1)

    def top_class(self, probabilities: np.ndarray) -> np.ndarray:
        """The class-balanced top class of each row of calibrated multi-class probabilities."""
        probabilities = np.asarray(probabilities, np.float64)
        return (probabilities / np.asarray(self.class_prior) if self.class_prior else probabilities).argmax(axis=1)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Calibration":
        return cls(str(values["method"]), float(values.get("slope", 1.0)),
                   float(values.get("intercept", 0.0)), float(values.get("temperature", 1.0)),
                   tuple(map(float, values.get("biases", ()))), tuple(map(float, values.get("class_prior", ()))))

    @classmethod
    def from_file(cls, path: Path) -> "Calibration":
        """A ``calibration.json``; the identity where there is none (older or copied models)."""
        return cls.from_dict(read_json(path, "Calibration file")) if Path(path).is_file() else cls()


def scaled_logits(probabilities: np.ndarray, temperature: float, biases=()) -> np.ndarray:
    """Multi-class logits (log-probabilities) divided by ``temperature``, plus per-class ``biases``."""
    logits = np.log(np.clip(probabilities, EPSILON, 1)) / temperature
    return logits + np.asarray(biases) if len(biases) else logits


def negative_log_likelihood(labels: np.ndarray, probabilities: np.ndarray, temperature: float,
                            biases=()) -> float:
    """Mean cross-entropy after dividing the logits by ``temperature`` (and adding ``biases``)."""
    if probabilities.ndim == 1:
        logits = logit(np.clip(probabilities, EPSILON, 1 - EPSILON)) / temperature
        return float(np.mean(np.logaddexp(0, logits) - labels * logits))
    log_probabilities = log_softmax(scaled_logits(probabilities, temperature, biases), axis=1)
    return float(-np.mean(log_probabilities[np.arange(len(labels)), labels]))


def fit_bias_temperature(labels: np.ndarray, probabilities: np.ndarray, balanced: bool) -> Calibration:
    """Temperature and per-class biases by maximum likelihood (the most frequent class's bias
    fixed at 0). With ``balanced`` the class prior, the fitting data's class frequencies
    (add-one smoothed for classes it lacks), is kept for the top-class decision."""
    counts = np.bincount(labels, minlength=probabilities.shape[1])
    reference = int(counts.argmax())

    def biases_of(parameters: np.ndarray) -> np.ndarray:
        return np.insert(parameters[1:], reference, 0.0)

    def loss(parameters: np.ndarray) -> float:
        return negative_log_likelihood(labels, probabilities, np.exp(parameters[0]), biases_of(parameters))

    from scipy.optimize import minimize  # fitting only: applying a map must start fast (06_infer.py)

    bounds = [(np.log(0.05), np.log(20.0))] + [(-BIAS_BOUND, BIAS_BOUND)] * (len(counts) - 1)
    result = minimize(loss, np.zeros(len(counts)), method="L-BFGS-B", bounds=bounds)
    if not result.success:
        log.warning("Bias-corrected temperature scaling did not converge (%s); its map may be off.", result.message)
    prior = (counts + 1) / (counts.sum() + len(counts))
    return Calibration("bias_temperature", temperature=float(np.exp(result.x[0])),
                       biases=tuple(float(b) for b in biases_of(result.x)),
                       class_prior=tuple(float(p) for p in prior) if balanced else ())


def fit_calibration(labels: np.ndarray, probabilities: np.ndarray, method: str,
                    balanced: bool = True) -> Calibration:
    """Fit ``method`` on validation labels and raw probabilities ((n,) binary, (n, classes) otherwise);
    ``balanced``: the network was trained with class weights, so its top class stays balanced."""
    # Fitting only: scoring applies a fitted map, and must not wait for scikit-learn (06_infer.py).
    from scipy.optimize import minimize_scalar
    from sklearn.linear_model import LogisticRegression

    if method not in METHODS:
        raise ConfigError(f"Unknown calibration {method!r}; choose one of {', '.join(METHODS)}.")
    labels = np.asarray(labels, int)
    probabilities = np.asarray(probabilities, np.float64)
    if method == "none":
        return Calibration()
    if method == "platt":
        if probabilities.ndim != 1:
            raise ConfigError("Platt scaling is for binary models; use temperature or bias_temperature "
                              "for several classes.")
        logits = logit(np.clip(probabilities, EPSILON, 1 - EPSILON))[:, None]
        regression = LogisticRegression(C=1.0).fit(logits, labels)  # mild L2: finite on separable data
        return Calibration("platt", float(regression.coef_[0, 0]), float(regression.intercept_[0]))
    if method == "bias_temperature":
        if probabilities.ndim != 2:
            raise ConfigError("bias_temperature is for multi-class models; use platt or temperature for binary ones.")
        return fit_bias_temperature(labels, probabilities, balanced)
    result = minimize_scalar(lambda t: negative_log_likelihood(labels, probabilities, t),
                             bounds=(0.05, 20.0), method="bounded")
    return Calibration("temperature", temperature=float(result.x))
