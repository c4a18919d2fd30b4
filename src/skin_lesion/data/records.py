"""The reader of records (split summaries, run records, model descriptions, calibrations) and
of records written before label spaces or provenance existed.

Those of earlier versions name only their task (``binary`` or ``multiclass``): they were all
HAM10000's, so :func:`task_of_record` reads them over its label space. It is the one place that does.
Records written before they said what the data was (``dataset``) are read as the dataset their
label space names (:func:`dataset_of`).
"""
from __future__ import annotations

from pathlib import Path

from skin_lesion.data.dataset import Provenance
from skin_lesion.data.datasets.ham10000 import HAM10000
from skin_lesion.data.datasets.registry import provenance_for
from skin_lesion.errors import ConfigError
from skin_lesion.tasks import KINDS, LabelSpace, Task


def label_space_of(record: dict, source: str = "a record") -> LabelSpace:
    """The label space a record carries; HAM10000's for records (or missing ones, ``{}``) of
    earlier versions. ``source`` names the record in errors."""
    return LabelSpace.from_dict(record["label_space"], source) if "label_space" in record else HAM10000


def dataset_of(record: dict, source: str = "a record") -> Provenance:
    """What the data of a record (split summary, run record, model description) was; for records
    of earlier versions, the dataset their label space names. ``source`` names it in errors."""
    if "dataset" in record:
        return Provenance.from_dict(record["dataset"], f"{source}: dataset")
    return provenance_for(label_space_of(record, source))


def task_of_record(record: dict, source: str) -> Task:
    """The task a record (split summary, run record, model description, calibration) describes
    over its label space. ``source`` names the record in errors."""
    if not isinstance(record, dict) or record.get("task") not in KINDS:
        raise ConfigError(f"{source} names no task ({', '.join(KINDS)}); was it written by this project?")
    return Task(record["task"], label_space_of(record, source))


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
