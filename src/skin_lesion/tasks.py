"""What a model's outputs mean: the label space a dataset defines and the task read over it.

A dataset's reader returns its label space: its diagnosis codes in output order, their display
names and which of them are malignant. A task reads a label space one of two ways:

* ``binary``: one sigmoid output, the probability of malignancy (any malignant diagnosis), so
  the binary task exists for every label space through its malignant set;
* ``multiclass``: one softmax output per diagnosis.

Both are screened alike: the malignant score is the binary output, or the summed probability of
the malignant diagnoses. The split summary, the run record, the model file and
``calibration.json`` carry the task with its label space (:meth:`Task.as_record`; read back by
``skin_lesion.data.records.task_of_record``, which also reads the records of earlier versions),
so every later step learns what a model means from the model's own files. This is the only module that spells
out a task's name; the rest of the package asks a :class:`Task`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from skin_lesion.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    import keras

BINARY = "binary"
MULTICLASS = "multiclass"
#: The tasks, as ``--task`` offers them.
KINDS: tuple[str, ...] = (BINARY, MULTICLASS)
#: The binary task's classes, in output order (the output is the malignant one's probability).
BENIGN_MALIGNANT: tuple[str, ...] = ("benign", "malignant")
#: The sections of ``test_metrics.json``: the screening metrics every task has, and the summary
#: of a multi-class task's top classes (named after the tasks, as earlier versions wrote them).
SCREENING_METRICS = BINARY
CLASS_METRICS = MULTICLASS


@dataclass(frozen=True)
class LabelSpace:
    """A dataset's diagnoses: ``codes`` in output order, their ``display_names`` (same order)
    and the ``malignant`` codes."""

    name: str
    codes: tuple[str, ...]
    display_names: tuple[str, ...]
    malignant: frozenset[str]

    def __post_init__(self) -> None:
        if len(set(self.codes)) != len(self.codes) or len(self.display_names) != len(self.codes):
            raise DatasetError(f"Label space {self.name!r}: codes must be unique and each needs "
                               f"one display name; got {list(self.codes)}.")
        unknown = sorted(self.malignant - set(self.codes))
        if unknown:
            raise DatasetError(f"Label space {self.name!r}: malignant code(s) {unknown} are not "
                               f"among its codes {list(self.codes)}.")

    @property
    def malignant_codes(self) -> tuple[str, ...]:
        """The malignant codes in output order."""
        return tuple(code for code in self.codes if code in self.malignant)

    def display_name(self, code: str) -> str:
        """The diagnosis' name for people (``Melanoma`` for ``mel``)."""
        return self.display_names[self.codes.index(code)]

    def indices(self, codes: Iterable[str]) -> np.ndarray:
        """Output index of each diagnosis code; an unknown code is an error that names it."""
        codes = list(codes)
        position = {code: index for index, code in enumerate(self.codes)}
        unknown = sorted({str(code) for code in codes if code not in position})
        if unknown:
            raise DatasetError(f"Diagnosis code(s) {', '.join(unknown)} are not in the label space "
                               f"{self.name!r} ({', '.join(self.codes)}).")
        return np.array([position[code] for code in codes], dtype=np.int64)

    def is_malignant(self, codes: Iterable[str]) -> np.ndarray:
        """Binary ground truth (1 = malignant) for a sequence of diagnosis codes."""
        return np.array([code in self.malignant for code in codes], dtype=np.int64)

    def as_dict(self) -> dict:
        """The label space as records carry it (JSON types only)."""
        return {"name": self.name, "codes": list(self.codes), "display_names": list(self.display_names),
                "malignant": list(self.malignant_codes)}

    @classmethod
    def from_dict(cls, values: dict, source: str = "a record") -> "LabelSpace":
        """The label space written by :meth:`as_dict`; a damaged one is an error naming ``source``."""
        try:
            return cls(str(values["name"]), tuple(values["codes"]), tuple(values["display_names"]),
                       frozenset(values["malignant"]))
        except (KeyError, TypeError) as error:
            raise DatasetError(f"The label space in {source} is damaged ({type(error).__name__}: {error}); "
                               "it needs name, codes, display_names and malignant.") from error


@dataclass(frozen=True)
class Task:
    """A label space read as ``binary`` (benign vs malignant) or ``multiclass`` (its diagnoses)."""

    kind: str
    label_space: LabelSpace

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"Unknown task {self.kind!r}; choose one of: {', '.join(KINDS)}.")

    @property
    def is_binary(self) -> bool:
        return self.kind == BINARY

    @property
    def classes(self) -> tuple[str, ...]:
        """Names of the classes a label indexes: benign/malignant, or the diagnosis codes."""
        return BENIGN_MALIGNANT if self.is_binary else self.label_space.codes

    @property
    def num_outputs(self) -> int:
        """Units of the output layer: one sigmoid unit for binary, one softmax unit per class."""
        return 1 if self.is_binary else len(self.label_space.codes)

    @property
    def activation(self) -> str:
        """The output layer's activation: one sigmoid, or a softmax over the classes."""
        return "sigmoid" if self.is_binary else "softmax"

    def loss(self, label_smoothing: float = 0.0) -> keras.losses.Loss:
        """The task's cross-entropy (Keras is imported here only, so this module stays light)."""
        import keras

        kind = keras.losses.BinaryCrossentropy if self.is_binary else keras.losses.CategoricalCrossentropy
        return kind(label_smoothing=label_smoothing)

    def describe(self) -> str:
        """``benign vs malignant`` or ``7 diagnoses``: what the model tells apart."""
        return "benign vs malignant" if self.is_binary else f"{len(self.label_space.codes)} diagnoses"

    def score_description(self, calibrated: bool) -> str:
        """What the malignant score of this task's outputs is; ``calibrated`` only when a
        calibration map was fitted."""
        kind = "calibrated probability" if calibrated else "probability (uncalibrated)"
        if self.is_binary:
            return f"{kind} of malignancy"
        return f"summed {kind} of {', '.join(self.label_space.malignant_codes)}"

    # --- labels and targets
    def labels(self, codes: Iterable[str]) -> np.ndarray:
        """Integer label of each diagnosis code: 1 = malignant for binary, the class index else."""
        codes = list(codes)
        indices = self.label_space.indices(codes)
        return self.label_space.is_malignant(codes) if self.is_binary else indices

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """Model targets: a column of 0/1 for binary, one-hot rows for several classes."""
        labels = np.asarray(labels, np.int64)
        if self.is_binary:
            return labels.astype(np.float32)[:, None]
        return np.eye(self.num_outputs, dtype=np.float32)[labels]

    def malignant_of_labels(self, labels: np.ndarray) -> np.ndarray:
        """Binary ground truth (1 = malignant) from integer labels."""
        labels = np.asarray(labels)
        if self.is_binary:
            return (labels == 1).astype(np.int64)
        return np.isin(labels, self.label_space.indices(self.label_space.malignant_codes)).astype(np.int64)

    # --- outputs
    def probabilities(self, outputs: np.ndarray) -> np.ndarray:
        """A model's outputs as probabilities: shape (n,) for binary, (n, classes) otherwise
        (in the outputs' own precision)."""
        outputs = np.asarray(outputs)
        return outputs.reshape(-1) if self.is_binary else outputs.reshape(len(outputs), -1)

    def malignant_score(self, probabilities: np.ndarray) -> np.ndarray:
        """The probability of malignancy: the binary output, or the malignant classes' sum."""
        probabilities = np.asarray(probabilities, np.float64)
        if self.is_binary:
            return probabilities.reshape(-1)
        columns = self.label_space.indices(self.label_space.malignant_codes)
        return probabilities[:, columns].sum(axis=1)

    # --- records
    def as_record(self) -> dict:
        """The task as the split summary, run record, model file and calibration carry it."""
        return {"task": self.kind, "class_names": list(self.classes),
                "label_space": self.label_space.as_dict()}
