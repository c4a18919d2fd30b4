"""The registry of dataset formats: each dataset module registers how to find and read its files.

A format knows the files that identify it (``find``: the folder or file holding them, or None),
how to read them into a :class:`~skin_lesion.data.dataset.Dataset`, what a split keeps together
(lesions, or patients where the data has them), where its files come from and their licence
(the :class:`~skin_lesion.data.dataset.Provenance` it records), and what the model card says
about it. ``--dataset NAME`` picks a format by name; without it the first format whose files
are present is used, in registration order (the most specific first).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from skin_lesion.data.dataset import Dataset, Provenance
from skin_lesion.errors import DatasetError
from skin_lesion.tasks import LabelSpace

#: The licence of data read by a format of any data (an image list, class folders).
OWNERS_LICENCE = "not recorded: the owner of the images decides"


@dataclass(frozen=True)
class DataSheet:
    """What the model card and the web app say about the data a model learnt from."""

    summary: str
    factors: str
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
    licence: str = ""  # a named dataset's; empty for formats of any data
    citation: str = ""
    sheet: DataSheet | None = None

    def provenance(self, dataset: Dataset) -> Provenance:
        """What data read in this format is: the named dataset, or for a format of any data (an
        image list, class folders) the name the data gives itself (its label space's)."""
        if self.licence:
            return self.record()
        return Provenance(dataset.label_space.name, f"{self.source} ({dataset.source_dir})", OWNERS_LICENCE)

    def record(self) -> Provenance:
        """The record of the named dataset this format reads."""
        return Provenance(self.title, self.source, self.licence, citation=self.citation)


FORMATS: dict[str, DatasetFormat] = {}


def register(dataset_format: DatasetFormat) -> DatasetFormat:
    FORMATS[dataset_format.name] = dataset_format
    return dataset_format


def get_format(name: str) -> DatasetFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise DatasetError(f"--dataset {name} is not a known dataset; choose one of {', '.join(FORMATS)}.") from None


def named_format(name: str) -> DatasetFormat | None:
    """The registered dataset called ``name`` (as its title and its label space name it)."""
    return next((f for f in FORMATS.values() if f.licence and f.title == name), None)


def provenance_for(space: LabelSpace) -> Provenance:
    """What a record that does not say (one written before records did) learnt from: the
    dataset its label space names, or no more than that name."""
    known = named_format(space.name)
    if known:
        return known.record()
    return Provenance(space.name, "not recorded", f"not recorded: {space.name}'s own applies")


def synthetic_sheet(provenance: Provenance) -> DataSheet:
    """What is said about synthetic data: that no population stands behind it."""
    return DataSheet(
        summary=f"{provenance.name}, generated images that are not photographs of skin lesions",
        factors=(f"{provenance.name} holds generated images, not photographs: its classes are far easier to "
                 "tell apart than real ones, so near-perfect figures are expected, and any age, sex or site is "
                 "made up. No patient population, device or skin type is represented."))


def data_sheet(provenance: Provenance) -> DataSheet:
    """What the model card and the app say about the data a model learnt from: its dataset's
    sheet, what synthetic data is, or for data not known by name what can be said without one."""
    if provenance.synthetic:
        return synthetic_sheet(provenance)
    known = named_format(provenance.name)
    return known.sheet if known and known.sheet else DataSheet(
        summary=f"{provenance.name} images",
        factors=(f"Where and with which devices {provenance.name} was collected, and from which patients, is "
                 "not recorded with the model: performance outside that population is unknown."))
