"""ISIC 2020 (SIIM-ISIC melanoma challenge): 33,126 dermoscopic images of 2,056 patients,
melanoma or not.

Files: ``train.csv`` (Kaggle) or ``ISIC_2020_Training_GroundTruth.csv`` (ISIC archive) with
image_name, patient_id, sex, age_approx, anatom_site_general_challenge, diagnosis,
benign_malignant and target; images in ``train/``, ``jpeg/train/`` or
``ISIC_2020_Training_JPEG/train/``. The labels are benign and malignant (``target``), so it
serves the binary task. Splits keep each patient's images together; where the published
duplicates list (``ISIC_2020_Training_Duplicates.csv``) pairs images of two patient ids, both
become one patient (``IP_1+IP_2``), so no pair is split.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from skin_lesion.data.dataset import (Dataset, check_unique, dataset_table, has_columns,
                                      index_images, line_numbers, match_images, read_csv_table, unlisted)
from skin_lesion.data.datasets.registry import DataSheet, DatasetFormat, LabelOptions, register
from skin_lesion.data.files import list_some
from skin_lesion.errors import DatasetError
from skin_lesion.tasks import LabelSpace

LABEL_FILES = ("train.csv", "ISIC_2020_Training_GroundTruth.csv", "ISIC_2020_Training_GroundTruth_v2.csv")
DUPLICATES_FILE = "ISIC_2020_Training_Duplicates.csv"
IMAGE_FOLDERS = ("train", "jpeg/train", "ISIC_2020_Training_JPEG/train", "ISIC_2020_Training_JPEG")
REQUIRED = ("image_name", "patient_id", "target")

ISIC2020 = LabelSpace("ISIC 2020", ("benign", "malignant"), ("Benign", "Malignant (melanoma)"),
                      frozenset({"malignant"}))

SHEET = DataSheet(
    summary="ISIC 2020 dermoscopic images of 2,056 patients, mostly of light skin",
    factors=("ISIC 2020 comes from six centres (Barcelona, Vienna, New York, Brisbane, Athens, Sydney) and "
             "holds every imaged lesion of each patient, so about 1.8 % are melanomas; no skin type is "
             "recorded. Performance on darker skin and other populations is unknown."),
    imbalance="melanomas are about 1.8 % of ISIC 2020",
)


def labels_file(root: Path) -> Path | None:
    """The first label file in ``root`` whose header names the ISIC 2020 columns."""
    return next((root / name for name in LABEL_FILES if has_columns(root / name, REQUIRED)), None)


def find(root: Path) -> Path | None:
    return root if root.is_dir() and labels_file(root) else None


def merged_patients(table: pd.DataFrame, duplicates: Path) -> pd.Series:
    """Patient ids where a duplicate pair joins two patients: ``IP_1+IP_2`` for both."""
    if not duplicates.is_file():
        return table["patient_id"]
    pairs = read_csv_table(duplicates, ("image_name_1", "image_name_2"), "Duplicates")
    patient_of = dict(zip(table["image_name"], table["patient_id"]))
    parent = {patient: patient for patient in set(table["patient_id"])}

    def root_of(patient: str) -> str:
        while parent[patient] != patient:
            patient = parent[patient]
        return patient

    for first, second in zip(pairs["image_name_1"], pairs["image_name_2"]):
        if first in patient_of and second in patient_of:
            a, b = sorted((root_of(patient_of[first]), root_of(patient_of[second])))
            parent[b] = a
    members: dict[str, list[str]] = {}
    for patient in parent:
        members.setdefault(root_of(patient), []).append(patient)
    joined = {patient: "+".join(sorted(members[root_of(patient)])) for patient in parent}
    return table["patient_id"].map(joined)


def read(root: Path, options: LabelOptions) -> Dataset:
    path = labels_file(root)
    table = read_csv_table(path, REQUIRED, "Labels")
    check_unique(table, "image_name", path, "Labels")
    bad = line_numbers(table)[~table["target"].isin(("0", "1")).to_numpy()]
    if len(bad):
        raise DatasetError(f"Labels file {path}: target must be 0 or 1; not so on line(s) {list_some(bad)}.")
    lesion_ids = table.get("lesion_id", table["image_name"])
    rows = pd.DataFrame({
        "image_id": table["image_name"], "patient_id": merged_patients(table, root / DUPLICATES_FILE),
        "lesion_id": lesion_ids.where(lesion_ids != "", table["image_name"]),
        "dx": table["target"].map({"0": "benign", "1": "malignant"}),
        "age": table.get("age_approx", ""), "sex": table.get("sex", ""),
        "localization": table.get("anatom_site_general_challenge", table.get("anatom_site_general", ""))})
    folders = [root / folder for folder in IMAGE_FOLDERS if (root / folder).is_dir()]
    on_disk = index_images(folders or [root])
    found, missing = match_images(rows, on_disk, path)
    extra = unlisted(on_disk, rows["image_id"], folders[0] if folders else root, path.name)
    return Dataset(dataset_table(found), root, "isic2020", ISIC2020, "patient_id", missing, extra)


FORMAT = register(DatasetFormat(
    name="isic2020", title="ISIC 2020", expects="train.csv (or ISIC_2020_Training_GroundTruth.csv) beside train/",
    source="Kaggle competition siim-isic-melanoma-classification, or https://challenge.isic-archive.com/data/#2020",
    find=find, read=read, licence="CC BY-NC 4.0 (attribution, non-commercial use only)",
    citation=("Rotemberg V. et al. A patient-centric dataset of images and metadata for identifying "
              "melanomas using clinical context. Sci. Data 8, 34 (2021). doi:10.1038/s41597-021-00815-z."),
    sheet=SHEET))
