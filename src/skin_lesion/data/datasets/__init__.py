"""Every dataset this project reads, one module each, and ``load_dataset`` that picks the right
one: by ``--dataset NAME``, or from the files present (the first format that finds its files,
in the order registered here: the most specific first, class folders last)."""
from __future__ import annotations

from pathlib import Path

from skin_lesion.data.dataset import Dataset
from skin_lesion.data.datasets import ham10000, isic2019, isic2020, pad_ufes20, image_list, class_folders  # noqa: F401  (registration order)
from skin_lesion.data.datasets.registry import FORMATS, DataSheet, LabelOptions, get_format, sheet_for
from skin_lesion.tasks import LabelSpace
from skin_lesion.errors import DatasetError

NAMES = tuple(FORMATS)


def missing_data_message(root: Path) -> str:
    return (f"Data folder {root} does not exist. Download a dataset with scripts/01_download_data.py, "
            "make the sample with scripts/00_make_sample_data.py, or pass the folder with --data-dir.")


def load_dataset(root: Path, name: str | None = None, malignant: tuple[str, ...] | None = None) -> Dataset:
    """The validated image table of the dataset at ``root`` (a folder, or an image list's CSV).

    ``name`` forces a format (``--dataset``); ``malignant`` names the malignant classes of data
    that does not (``--malignant``)."""
    root = Path(root).expanduser().resolve()
    if not root.exists():
        raise DatasetError(missing_data_message(root))
    options = LabelOptions(tuple(malignant) if malignant else None)
    if name:
        chosen = get_format(name)
        found = chosen.find(root)
        if found is None:
            raise DatasetError(f"--dataset {name}: {root} does not hold {chosen.title}'s files "
                               f"({chosen.expects}). Point --data-dir at the folder that does.")
        return chosen.read(found, options)
    for dataset_format in FORMATS.values():
        found = dataset_format.find(root)
        if found is not None:
            return dataset_format.read(found, options)
    known = "; ".join(f"{f.title}: {f.expects}" for f in FORMATS.values())
    raise DatasetError(f"{root} holds none of the layouts this project reads ({known}). Point --data-dir at "
                       "the folder that holds them, or list your images in a CSV (path,label).")


def data_sheet(space: LabelSpace) -> DataSheet:
    """The data sheet of the dataset a label space comes from; for data not known by name, what
    can be said without one."""
    return sheet_for(space.name) or DataSheet(
        summary=f"{space.name} images",
        factors=(f"Where and with which devices {space.name} was collected, and from which patients, is "
                 "not recorded with the model: performance outside that population is unknown."),
        licence=f"trained on {space.name}: its licence applies",
        citation=f"Cite {space.name} as its authors ask.")
