"""Which runs to combine, chosen on the validation split only.

Greedy forward selection with replacement (Caruana et al. 2004, "Ensemble selection from libraries
of models"; the ISIC 2019 winners chose their ensembles so): start from nothing, and at each step
add the candidate, possibly one already chosen, whose addition gives the average of the chosen
members' validation probabilities the best score; stop at ``max_members`` picks or when no addition
improves the score. A run picked twice weighs twice. The score is validation PR-AUC for the binary
task and macro ROC-AUC (one class against the rest, averaged) for several classes. Not balanced
accuracy, though the 7-class recipe is judged by it: it counts each image of a rare class as a
large step (HAM10000's validation split has 13 dermatofibromas, each worth 1.1 points of balanced
accuracy), so greedy steps on it follow noise, and the ensemble's decision is refitted on
validation anyway (its calibration's class biases); the ranking of every class is what averaging
should improve.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn import metrics

from skin_lesion.errors import ConfigError
from skin_lesion.metrics import macro_roc_auc


@dataclass
class Validation:
    """A run's validation labels and probabilities (``val_probs.npz``), by image."""

    run: str
    labels: np.ndarray
    probabilities: np.ndarray
    image_ids: np.ndarray

    @classmethod
    def read(cls, run: str, path: Path) -> "Validation":
        if not Path(path).is_file():
            raise ConfigError(f"--select-from {run}: no {path}; finish that run or leave it out.")
        with np.load(path) as saved:
            return cls(run, saved["labels"], saved["probabilities"], saved["image_ids"])

    def restricted(self, image_ids: np.ndarray) -> "Validation":
        rows = {image_id: row for row, image_id in enumerate(self.image_ids)}
        picked = np.array([rows[image_id] for image_id in image_ids], int)
        return Validation(self.run, self.labels[picked], self.probabilities[picked], image_ids)


def aligned(validations: list[Validation]) -> list[Validation]:
    """The runs' validation results on the images all of them scored, in one order (runs at
    other sizes may have set aside other unreadable images)."""
    common = sorted(set.intersection(*(set(v.image_ids) for v in validations)))
    if not common:
        raise ConfigError("--select-from: the runs share no validation image; choose runs of one split.")
    return [validation.restricted(np.array(common)) for validation in validations]


def validation_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """PR-AUC of a binary score (n,); for class probabilities (n, classes), the mean one-vs-rest
    ROC-AUC over the classes the images include (a class without validation images has none)."""
    if probabilities.ndim == 1:
        return float(metrics.average_precision_score(labels, probabilities))
    return macro_roc_auc(labels, probabilities, present_only=True)


def greedy_selection(validations: list[Validation], max_members: int) -> dict:
    """The picks (run names, repeats allowed), their weights and the trace of every step."""
    validations = aligned(validations)
    labels = validations[0].labels
    picks: list[int] = []
    trace, best = [], -np.inf
    for step in range(1, max_members + 1):
        scores = [validation_score(labels, np.mean([validations[i].probabilities for i in picks + [c]], axis=0))
                  for c in range(len(validations))]
        candidate = int(np.argmax(scores))
        if scores[candidate] <= best:
            break
        picks.append(candidate)
        best = scores[candidate]
        trace.append({"step": step, "added": validations[candidate].run, "score": best,
                      "candidates": {v.run: score for v, score in zip(validations, scores)}})
    runs = list(dict.fromkeys(validations[i].run for i in picks))
    return {"method": "greedy forward selection with replacement (Caruana et al. 2004)",
            "metric": "validation PR-AUC" if validations[0].probabilities.ndim == 1 else "validation macro ROC-AUC",
            "images": int(len(labels)), "candidates": [v.run for v in validations], "runs": runs,
            "weights": [sum(validations[i].run == run for i in picks) for run in runs], "trace": trace}
