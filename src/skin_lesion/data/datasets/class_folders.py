"""Class folders: ``train/<CLASS>/*.jpg`` with optional ``val/`` and ``test/``, as image
datasets on Kaggle and elsewhere are often shared.

Folders named after the HAM10000 codes (any case) are read as HAM10000's label space. Any other
names make a label space of their own (the codes are the folder names in lower case), whose
malignant classes come from ``--malignant`` or a ``labels.json`` in the folder. There are no
lesion ids, so each image is treated as its own lesion (a warning says what that means).
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from skin_lesion.data.dataset import Dataset, dataset_table
from skin_lesion.data.datasets.ham10000 import HAM10000
from skin_lesion.data.datasets.labels import label_space_from_names
from skin_lesion.data.datasets.registry import DatasetFormat, LabelOptions, register
from skin_lesion.data.files import is_image_file, list_some
from skin_lesion.errors import DatasetError

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def split_folders(root: Path) -> list[tuple[Path, str]]:
    return [(child, SPLIT_FOLDERS[child.name.lower()]) for child in sorted(root.iterdir())
            if child.is_dir() and child.name.lower() in SPLIT_FOLDERS]


def find(root: Path) -> Path | None:
    return root if root.is_dir() and split_folders(root) else None


def read(root: Path, options: LabelOptions) -> Dataset:
    rows, ignored = [], []
    for split_folder, split in split_folders(root):
        for class_folder in sorted(split_folder.iterdir()):
            if not class_folder.is_dir():
                ignored.append(class_folder)
                continue
            for path in sorted(class_folder.iterdir()):
                if is_image_file(path):
                    rows.append({"image_id": path.stem, "dx": class_folder.name.lower(),
                                 "image_path": str(path), "split": split})
                else:
                    ignored.append(path)
    if ignored:
        log.warning("%d file(s) that are not images are not used: %s", len(ignored), list_some(ignored))
    if not rows:
        raise DatasetError(f"No images found under {root}/<split>/<CLASS>/.")
    table = pd.DataFrame(rows).assign(lesion_id=lambda frame: frame["image_id"])
    duplicated = table["image_id"].duplicated(keep=False)
    if duplicated.any():
        raise DatasetError(
            f"Image name(s) found in more than one folder under {root}: "
            f"{list_some(table.loc[duplicated, 'image_path'])}. Image names must be unique.")
    if "train" not in set(table["split"]):
        raise DatasetError(f"{root} has no train/ folder with images; it is required.")
    names = sorted(set(table["dx"]))
    space = HAM10000 if set(names) <= set(HAM10000.codes) else label_space_from_names(
        names, root.name, options, root / "labels.json", f"class folders of {root}")
    log.warning("Class-folder layout at %s has no lesion ids: each image is treated as its own lesion, "
                "so images of one lesion may land in different splits.", root)
    return Dataset(dataset_table(table), root, "class_folders", space)


FORMAT = register(DatasetFormat(
    name="class-folders", title="class folders", expects="train/<CLASS>/ folders (val/ and test/ optional)",
    source="any image collection sorted into one folder per class", find=find, read=read))
