"""The single label map for both tasks.

HAM10000 diagnoses (``dx``) are mapped either to a binary benign/malignant label or to one of
seven classes in a fixed, alphabetical order. Every script reads its labels from here.
"""
from __future__ import annotations

import numpy as np

#: The seven HAM10000 diagnosis codes, in the fixed order of the 7-class task's outputs.
DIAGNOSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

DIAGNOSIS_NAMES: dict[str, str] = {
    "akiec": "Actinic keratoses and intraepithelial carcinoma (Bowen's disease)",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesions",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevi",
    "vasc": "Vascular lesions",
}

#: Diagnoses counted as malignant in the binary task.
MALIGNANT: frozenset[str] = frozenset({"akiec", "bcc", "mel"})

BINARY_CLASSES: tuple[str, ...] = ("benign", "malignant")

TASKS: dict[str, tuple[str, ...]] = {"binary": BINARY_CLASSES, "multiclass": DIAGNOSES}


def check_task(task: str) -> str:
    """Return ``task`` if it is known, else raise a ValueError that lists the choices."""
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}; choose one of: {', '.join(TASKS)}.")
    return task


def class_names(task: str) -> tuple[str, ...]:
    """Names of the model outputs for ``task``, in output order."""
    return TASKS[check_task(task)]


def num_outputs(task: str) -> int:
    """Units of the output layer: one sigmoid unit for binary, one softmax unit per class."""
    return 1 if check_task(task) == "binary" else len(DIAGNOSES)


def label_of(dx: str, task: str) -> int:
    """Integer label of a diagnosis code for ``task``."""
    if check_task(task) == "binary":
        return int(dx in MALIGNANT)
    return DIAGNOSES.index(dx)


def labels_of(dx_codes, task: str) -> np.ndarray:
    """Vectorised :func:`label_of` for a sequence of diagnosis codes."""
    return np.array([label_of(dx, task) for dx in dx_codes], dtype=np.int64)


def malignant_score(probabilities: np.ndarray, task: str) -> np.ndarray:
    """The probability of malignancy from a model's outputs.

    Binary models output it directly; for 7-class models it is the summed probability of the
    malignant diagnoses, so both tasks can be screened at one threshold.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if check_task(task) == "binary":
        return probabilities.reshape(-1)
    columns = [DIAGNOSES.index(dx) for dx in sorted(MALIGNANT)]
    return probabilities[:, columns].sum(axis=1)


def is_malignant(dx_codes) -> np.ndarray:
    """Binary ground truth (1 = malignant) for a sequence of diagnosis codes."""
    return np.array([dx in MALIGNANT for dx in dx_codes], dtype=np.int64)


def malignant_of_labels(labels, task: str) -> np.ndarray:
    """Binary ground truth (1 = malignant) from integer labels of ``task``."""
    labels = np.asarray(labels)
    if check_task(task) == "binary":
        return (labels == 1).astype(np.int64)
    malignant = [DIAGNOSES.index(dx) for dx in sorted(MALIGNANT)]
    return np.isin(labels, malignant).astype(np.int64)


def one_hot_targets(labels, task: str) -> np.ndarray:
    """Model targets: a column of 0/1 for binary, one-hot rows for 7 classes."""
    labels = np.asarray(labels, np.int64)
    if check_task(task) == "binary":
        return labels.astype(np.float32)[:, None]
    return np.eye(len(DIAGNOSES), dtype=np.float32)[labels]
