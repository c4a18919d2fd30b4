"""ISIC 2019 (BCN20000, HAM10000 and MSK images): 25,331 dermoscopic images, eight diagnoses.

Files, as the challenge publishes them: ``ISIC_2019_Training_GroundTruth.csv`` (one-hot columns
MEL, NV, BCC, AK, BKL, DF, VASC, SCC, UNK), ``ISIC_2019_Training_Metadata.csv`` (image,
age_approx, anatom_site_general, lesion_id, sex) and ``ISIC_2019_Training_Input/*.jpg``. Quirks:
some images are named ``*_downsampled`` (the id drops the suffix; either name finds the file);
many rows have no lesion_id (the image is then its own lesion); a diagnosis with no image (UNK,
in the training set) is left out of the model's classes with a warning. AK counts as malignant,
as HAM10000's akiec does (ISIC 2019's AK images include HAM10000's akiec).
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from skin_lesion.data.dataset import (Dataset, check_one_diagnosis_per_lesion, check_unique, dataset_table, index_images, line_numbers,
                                      match_images, read_csv_table, unlisted)
from skin_lesion.data.datasets.labels import with_images_only
from skin_lesion.data.datasets.registry import DataSheet, DatasetFormat, LabelOptions, register
from skin_lesion.data.files import list_some
from skin_lesion.errors import DatasetError
from skin_lesion.tasks import LabelSpace

GROUND_TRUTH_FILE = "ISIC_2019_Training_GroundTruth.csv"
METADATA_FILE = "ISIC_2019_Training_Metadata.csv"
IMAGE_FOLDER = "ISIC_2019_Training_Input"
DOWNSAMPLED = "_downsampled"
DIAGNOSES = {"ak": "Actinic keratosis", "bcc": "Basal cell carcinoma",
             "bkl": "Benign keratosis (solar lentigo, seborrheic keratosis, lichen planus-like keratosis)",
             "df": "Dermatofibroma", "mel": "Melanoma", "nv": "Melanocytic nevus",
             "scc": "Squamous cell carcinoma", "vasc": "Vascular lesion", "unk": "None of the others"}
log = logging.getLogger(__name__)

MALIGNANT = frozenset({"ak", "bcc", "mel", "scc"})

SHEET = DataSheet(
    summary="ISIC 2019 dermoscopic images (BCN20000, HAM10000, MSK), mostly of light skin",
    factors=("ISIC 2019 joins BCN20000 (Barcelona), HAM10000 (Vienna, Queensland) and MSK (New York) "
             "images taken with several dermoscopes; patients are predominantly of light skin types and "
             "no skin type is recorded. Performance on darker skin, clinical (non-dermoscopic) photographs "
             "and other populations is unknown."),
    imbalance="nevi are about half of ISIC 2019",
)


def find(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    candidates = [root / GROUND_TRUTH_FILE, *sorted(root.glob(f"*/{GROUND_TRUTH_FILE}"))]
    found = next((path for path in candidates if path.is_file()), None)
    return found and found.parent


def canonical_id(name: str) -> str:
    return name[: -len(DOWNSAMPLED)] if name.endswith(DOWNSAMPLED) else name


def read_ground_truth(path: Path) -> pd.DataFrame:
    """One row per image: ``image_id`` and its diagnosis ``dx`` (lower case) from the one-hot
    columns; a row with no diagnosis or several is an error naming its line."""
    table = read_csv_table(path, ("image",), "Ground-truth")
    columns = [column for column in table.columns if column.lower() in DIAGNOSES]
    if not columns:
        raise DatasetError(f"Ground-truth file {path} has none of the diagnosis columns "
                           f"{', '.join(code.upper() for code in DIAGNOSES)}.")
    values = table[columns].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy()
    ones = (values > 0.5).sum(axis=1)
    wrong = line_numbers(table)[ones != 1]
    if len(wrong):
        raise DatasetError(f"Ground-truth file {path}: line(s) {list_some(wrong)} mark no diagnosis or more "
                           "than one; each image needs exactly one 1.0.")
    result = pd.DataFrame({"image_id": table["image"].map(canonical_id),
                           "file_id": table["image"],
                           "dx": [columns[index].lower() for index in values.argmax(axis=1)]})
    check_unique(result, "image_id", path, "Ground-truth")
    return result


ISIC2019 = LabelSpace("ISIC 2019", tuple(DIAGNOSES), tuple(DIAGNOSES.values()), MALIGNANT)


def read_metadata(path: Path) -> pd.DataFrame:
    """age, sex, site and lesion per image id; empty columns (and a warning) without the file."""
    if not path.is_file():
        log.warning("No %s beside the ground truth: age, sex, site and lesion ids are unknown, "
                    "so each image is its own lesion.", path.name)
        return pd.DataFrame(columns=["image_id", "age", "sex", "localization", "lesion_id"])
    table = read_csv_table(path, ("image",), "Metadata")
    return pd.DataFrame({"image_id": table["image"].map(canonical_id),
                         "age": table.get("age_approx", ""), "sex": table.get("sex", ""),
                         "localization": table.get("anatom_site_general", ""),
                         "lesion_id": table.get("lesion_id", "")})


def read(root: Path, options: LabelOptions) -> Dataset:
    truth_path = root / GROUND_TRUTH_FILE
    truth = read_ground_truth(truth_path)
    metadata = read_metadata(root / METADATA_FILE).drop_duplicates("image_id")
    table = truth.merge(metadata, on="image_id", how="left").fillna("")
    table["lesion_id"] = table["lesion_id"].where(table["lesion_id"] != "", table["image_id"])
    files = index_images([root / IMAGE_FOLDER if (root / IMAGE_FOLDER).is_dir() else root], recursive=True)
    on_disk = {canonical_id(stem): path for stem, path in files.items()}
    found, missing = match_images(table, on_disk, truth_path)
    extra = unlisted(on_disk, table["image_id"], root, GROUND_TRUTH_FILE)
    check_one_diagnosis_per_lesion(found, f"{truth_path} with the lesion ids of {METADATA_FILE}")
    return Dataset(dataset_table(found), root, "isic2019", with_images_only(ISIC2019, set(found["dx"])), "lesion_id",
                   missing, extra)


FORMAT = register(DatasetFormat(
    name="isic2019", title="ISIC 2019", expects=f"{GROUND_TRUTH_FILE} beside {IMAGE_FOLDER}/",
    source="https://challenge.isic-archive.com/data/#2019", find=find, read=read,
    licence="CC BY-NC 4.0 (attribution, non-commercial use only)",
    citation=("Tschandl et al. 2018 (HAM10000); Codella et al. 2017 (ISIC 2017); Combalia et al. 2019 "
              "(BCN20000). ISIC 2019 challenge data."),
    sheet=SHEET))
