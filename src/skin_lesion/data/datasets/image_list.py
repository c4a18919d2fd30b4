"""An image list: any dataset this project does not know by name, as a CSV of ``path,label``.

Optional columns: ``group`` (images of one lesion; without it each image is its own lesion),
``patient`` (then splits keep each patient's images together), ``age``, ``sex`` and ``site``.
Relative paths are read from the CSV's folder. The labels are the classes (lower-cased); which
are malignant comes from ``--malignant CODE ...`` or a ``labels.json`` beside the CSV (see
``labels.py``). Pass the CSV itself as ``--data-dir``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from skin_lesion.data.dataset import (Dataset, check_missing_fraction, check_one_diagnosis_per_lesion,
                                      dataset_table, has_columns, read_csv_table)
from skin_lesion.data.datasets.labels import label_space_from_names
from skin_lesion.data.datasets.registry import DatasetFormat, LabelOptions, register
from skin_lesion.data.files import has_image_extension, list_some
from skin_lesion.errors import DatasetError

REQUIRED = ("path", "label")
LABELS_FILE = "labels.json"


def find(root: Path) -> Path | None:
    return root if root.suffix.lower() == ".csv" and has_columns(root, REQUIRED) else None


def absolute(path: str, folder: Path) -> str:
    return str(Path(path) if Path(path).is_absolute() else (folder / path).resolve())


def read(source: Path, options: LabelOptions) -> Dataset:
    table = read_csv_table(source, REQUIRED, "Image list")
    paths = table["path"].map(lambda path: absolute(path, source.parent))
    grouped = "group" in table and table["group"].ne("").any()
    rows = pd.DataFrame({
        "image_id": paths.map(lambda path: Path(path).stem), "image_path": paths,
        "dx": table["label"].str.lower(),
        "lesion_id": table["group"].where(table["group"] != "", paths.map(lambda p: Path(p).stem))
        if grouped else paths.map(lambda path: Path(path).stem),
        "patient_id": table.get("patient", ""), "age": table.get("age", ""), "sex": table.get("sex", ""),
        "localization": table.get("site", "")})
    clashing = rows["image_id"].duplicated(keep=False)
    if clashing.any():
        raise DatasetError(f"Image list {source}: these paths share a file name, which is the image id: "
                           f"{list_some(rows.loc[clashing, 'image_path'])}. Rename the files so each name is "
                           "unique (or list each image once).")
    check_one_diagnosis_per_lesion(rows, str(source))
    present = rows["image_path"].map(lambda path: Path(path).is_file() and has_image_extension(Path(path)))
    missing = sorted(rows.loc[~present, "image_path"])
    check_missing_fraction(missing, len(rows), "missing or not images", source)
    names = sorted(set(rows["dx"]))
    space = label_space_from_names(names, source.stem, options, source.parent / LABELS_FILE,
                                   f"image list {source}")
    group_by = "patient_id" if rows["patient_id"].ne("").all() else "lesion_id"
    return Dataset(dataset_table(rows[present]), source.parent, "image_list", space, group_by, missing)


FORMAT = register(DatasetFormat(
    name="image-list", title="image list", expects="a CSV file with path and label columns",
    source="your own images", find=find, read=read))
