"""The registry of dataset formats: each dataset module registers how to find and read its files.

A format knows the files that identify it (``find``: the folder or file holding them, or None),
how to read them into a :class:`~skin_lesion.data.dataset.Dataset`, what a split keeps together
(lesions, or patients where the data has them), where its files come from and what the model
card says about it. ``--dataset NAME`` picks a format by name; without it the first format whose
files are present is used, in registration order (the most specific first).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from skin_lesion.data.dataset import Dataset
from skin_lesion.errors import DatasetError


@dataclass(frozen=True)
class DataSheet:
    """What the model card and the web app say about the data a model learnt from."""

    summary: str
    factors: str
    licence: str
    citation: str
    imbalance: str = ""


@dataclass(frozen=True)
class LabelOptions:
    """What the command line adds for data that does not name its own malignant diagnoses
    (an image list, class folders): ``--malignant CODE ...``."""

    malignant: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DatasetFormat:
    name: str  # as --dataset takes it
    title: str  # as people write it
    expects: str  # the files that identify it, for messages
    source: str  # where its files come from
    find: Callable[[Path], Path | None]
    read: Callable[[Path, LabelOptions], Dataset]
    sheet: DataSheet | None = None


FORMATS: dict[str, DatasetFormat] = {}


def register(dataset_format: DatasetFormat) -> DatasetFormat:
    FORMATS[dataset_format.name] = dataset_format
    return dataset_format


def get_format(name: str) -> DatasetFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise DatasetError(f"--dataset {name} is not a known dataset; choose one of {', '.join(FORMATS)}.") from None


def sheet_for(label_space_name: str) -> DataSheet | None:
    """The data sheet of the dataset whose label space has this name, if one is registered."""
    return next((f.sheet for f in FORMATS.values() if f.sheet and f.title == label_space_name), None)
