"""Every dataset this project reads, one module each, and ``load_dataset`` that picks the right
one: by ``--dataset NAME``, or from the files present (the first format that finds its files,
in the order registered here: the most specific first, class folders last)."""
from __future__ import annotations

import logging
from pathlib import Path

from skin_lesion.data.dataset import Dataset, read_provenance_file
from skin_lesion.data.datasets import ham10000, isic2019, isic2020, pad_ufes20, image_list, class_folders  # noqa: F401  (registration order)
from skin_lesion.data.datasets.registry import FORMATS, DatasetFormat, LabelOptions, get_format
from skin_lesion.data.datasets.registry import data_sheet  # noqa: F401  (for the model card and the app)
from skin_lesion.errors import DatasetError

NAMES = tuple(FORMATS)
log = logging.getLogger(__name__)


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
        return read_recorded(chosen, found, options)
    for dataset_format in FORMATS.values():
        found = dataset_format.find(root)
        if found is not None:
            return read_recorded(dataset_format, found, options)
    known = "; ".join(f"{f.title}: {f.expects}" for f in FORMATS.values())
    raise DatasetError(f"{root} holds none of the layouts this project reads ({known}). Point --data-dir at "
                       "the folder that holds them, or list your images in a CSV (path,label).")


def read_recorded(dataset_format: DatasetFormat, found: Path, options: LabelOptions) -> Dataset:
    """The dataset with what it is: the ``provenance.json`` beside it (the generated sample's
    says it is synthetic), else its format's record; synthetic data says so on the console."""
    dataset = dataset_format.read(found, options)
    dataset.provenance = read_provenance_file(dataset.source_dir) or dataset_format.provenance(dataset)
    if dataset.provenance.synthetic:
        log.warning(dataset.provenance.caveat())
    return dataset
