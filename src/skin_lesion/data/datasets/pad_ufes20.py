"""PAD-UFES-20 (Pacheco et al. 2020): 2,298 smartphone photographs of 1,641 lesions of 1,373
patients in Brazil, six diagnoses, with Fitzpatrick skin type and clinical answers.

Files: ``metadata.csv`` (patient_id, lesion_id, img_id, diagnostic in ACK, BCC, MEL, NEV, SCC,
SEK, age, gender, region, fitspatrick, ...) and the PNG images in ``images/`` or
``imgs_part_1/`` ... ``imgs_part_3/`` (searched recursively). Malignant, as the dataset's
authors group them: the three skin cancers BCC, MEL and SCC; ACK (actinic keratosis, a
pre-malignant lesion), NEV and SEK are benign — unlike HAM10000, whose akiec also holds Bowen's
disease and counts as malignant (external validation reads ACK as akiec, see ``labels.py``).
Splits keep each patient's images together. These are clinical photographs, not dermoscopy.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from skin_lesion.data.dataset import (Dataset, check_codes, check_one_diagnosis_per_lesion, check_unique,
                                      dataset_table, has_columns, index_images, match_images, read_csv_table,
                                      unlisted)
from skin_lesion.data.datasets.labels import with_images_only
from skin_lesion.data.datasets.registry import DataSheet, DatasetFormat, LabelOptions, register
from skin_lesion.tasks import LabelSpace

METADATA_FILE = "metadata.csv"
REQUIRED = ("patient_id", "lesion_id", "img_id", "diagnostic")
#: PAD-UFES-20's ``biopsed`` in HAM10000's ``dx_type`` codes: a biopsy means histopathology.
BIOPSED = {"true": "histo", "false": "no_biopsy"}

PAD_UFES_20 = LabelSpace(
    "PAD-UFES-20", ("ack", "bcc", "mel", "nev", "scc", "sek"),
    ("Actinic keratosis", "Basal cell carcinoma", "Melanoma", "Nevus", "Squamous cell carcinoma",
     "Seborrheic keratosis"),
    frozenset({"bcc", "mel", "scc"}))

SHEET = DataSheet(
    summary="PAD-UFES-20 smartphone photographs from Brazil",
    factors=("PAD-UFES-20 was collected by the dermatology programme of the Federal University of Espírito "
             "Santo (Brazil) with several smartphones, without dermoscopy; it records Fitzpatrick skin "
             "types (mostly I-III). Performance on dermoscopic images and other populations is unknown."),
    imbalance="BCC is about 37 % of PAD-UFES-20",
)


def find(root: Path) -> Path | None:
    return root if has_columns(root / METADATA_FILE, REQUIRED) else None


def read(root: Path, options: LabelOptions) -> Dataset:
    path = root / METADATA_FILE
    table = read_csv_table(path, REQUIRED, "Metadata")
    table["dx"] = table["diagnostic"].str.lower()
    check_codes(table, "dx", PAD_UFES_20, path, "Metadata")
    rows = pd.DataFrame({"image_id": table["img_id"].map(lambda name: Path(name).stem),
                         "lesion_id": "PAD_" + table["lesion_id"], "patient_id": table["patient_id"],
                         "dx": table["dx"], "age": table.get("age", ""),
                         "sex": table.get("gender", "").str.lower() if "gender" in table else "",
                         "localization": table.get("region", "").str.lower() if "region" in table else "",
                         "dx_type": table["biopsed"].str.lower().map(BIOPSED) if "biopsed" in table else ""})
    check_unique(rows, "image_id", path, "Metadata")
    check_one_diagnosis_per_lesion(rows, str(path))
    on_disk = index_images([root], recursive=True)
    found, missing = match_images(rows, on_disk, path)
    extra = unlisted(on_disk, rows["image_id"], root, METADATA_FILE)
    return Dataset(dataset_table(found), root, "pad-ufes-20", with_images_only(PAD_UFES_20, set(found["dx"])),
                   "patient_id", missing, extra)


FORMAT = register(DatasetFormat(
    name="pad-ufes-20", title="PAD-UFES-20", expects=f"{METADATA_FILE} with img_id and diagnostic, and PNG images",
    source="https://data.mendeley.com/datasets/zr7vgbcyr2/1", find=find, read=read,
    licence="CC BY 4.0 (attribution)",
    citation=("Pacheco A. G. C. et al. PAD-UFES-20: a skin lesion dataset composed of patient data and "
              "clinical images collected from smartphones. Data in Brief 32, 106221 (2020)."),
    sheet=SHEET))
