"""HAM10000's label space, and the reader of records written before label spaces existed.

The seven HAM10000 diagnoses, alphabetical, are the output order of its 7-class models; akiec,
bcc and mel are malignant. Split summaries, run records, model files and calibration files of
earlier versions name only their task (``binary`` or ``multiclass``): they were all HAM10000's,
so :func:`task_of_record` reads them over this label space. It is the one place that does.
"""
from __future__ import annotations

from pathlib import Path

from skin_lesion.errors import ConfigError
from skin_lesion.tasks import KINDS, LabelSpace, Task

HAM10000 = LabelSpace(
    name="HAM10000",
    codes=("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),
    display_names=(
        "Actinic keratoses and intraepithelial carcinoma (Bowen's disease)",
        "Basal cell carcinoma",
        "Benign keratosis-like lesions",
        "Dermatofibroma",
        "Melanoma",
        "Melanocytic nevi",
        "Vascular lesions",
    ),
    malignant=frozenset({"akiec", "bcc", "mel"}),
)


def label_space_of(record: dict) -> LabelSpace:
    """The label space a record carries; HAM10000's for records (or missing ones, ``{}``) of
    earlier versions."""
    return LabelSpace.from_dict(record["label_space"]) if "label_space" in record else HAM10000


def task_of_record(record: dict, source: str) -> Task:
    """The task a record describes over its label space. ``source`` names it in errors."""
    if record.get("task") not in KINDS:
        raise ConfigError(f"{source} names no task ({', '.join(KINDS)}); was it written by this project?")
    return Task(record["task"], label_space_of(record))


def task_of_outputs(units: int, path: Path) -> Task:
    """The task of a model saved elsewhere, from its output units: 1 is benign vs malignant,
    seven are the HAM10000 diagnoses (the only models such files can have been made for)."""
    for kind in KINDS:
        task = Task(kind, HAM10000)
        if task.num_outputs == units:
            return task
    raise ConfigError(f"{path} has {units} outputs and does not say what they mean; models "
                      f"without this project's description must have 1 (benign vs malignant) or "
                      f"{len(HAM10000.codes)} (the HAM10000 diagnoses).")
