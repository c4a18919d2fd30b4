"""HAM10000 (Tschandl et al. 2018) in the Kaggle layout: its label space, data sheet and reader.

The Kaggle download (``kmader/skin-cancer-mnist-ham10000``) has ``HAM10000_metadata.csv``
beside ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``; the zip also carries
lower-case copies of both image folders and ``hmnist_*.csv`` files: each image is counted once.
The seven diagnoses, alphabetical, are the output order of its 7-class models; akiec (actinic
keratoses and Bowen's disease, an intraepithelial carcinoma), bcc and mel are malignant.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from skin_lesion.data.dataset import (PATIENT_COLUMNS, Dataset, check_codes, check_one_diagnosis_per_lesion,
                                      check_unique, dataset_table, index_images, match_images, read_csv_table,
                                      unlisted)
from skin_lesion.data.datasets.registry import DataSheet, DatasetFormat, LabelOptions, register
from skin_lesion.tasks import LabelSpace

METADATA_FILE = "HAM10000_metadata.csv"
IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
METADATA_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", *PATIENT_COLUMNS)
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")

HAM10000 = LabelSpace(
    name="HAM10000",
    codes=("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"),
    display_names=(
        "Actinic keratoses and intraepithelial carcinoma (Bowen's disease)",
        "Basal cell carcinoma",
        "Benign keratosis-like lesions",
        "Dermatofibroma",
        "Melanoma",
        "Melanocytic nevi",
        "Vascular lesions",
    ),
    malignant=frozenset({"akiec", "bcc", "mel"}),
)

HAM10000_SHEET = DataSheet(
    summary="HAM10000 dermoscopic images, mostly of light skin",
    factors=("HAM10000 was collected at two sites (Vienna, Austria, and Queensland, Australia) with a "
             "few dermoscope models; patients are predominantly of light skin types (the dataset "
             "records no skin type). Performance on darker skin, other devices and other populations "
             "is unknown. More than half of the diagnoses are confirmed by histopathology, most nevi "
             "by follow-up or expert consensus."),
    imbalance="nevi are about two thirds of HAM10000",
)


def find_metadata(root: Path) -> Path | None:
    """The metadata CSV in ``root`` or one folder below it (a zip extracted into a subfolder)."""
    if not root.is_dir():
        return None
    candidates = [root / METADATA_FILE, *sorted(root.glob(f"*/{METADATA_FILE}"))]
    return next((path for path in candidates if path.is_file()), None)


def find(root: Path) -> Path | None:
    metadata = find_metadata(root)
    return metadata and metadata.parent


def read_metadata(path: Path) -> pd.DataFrame:
    """Read and check ``HAM10000_metadata.csv``; ``dx`` comes back as lower-case codes."""
    table = read_csv_table(path, REQUIRED_COLUMNS, "Metadata")
    table["dx"] = table["dx"].str.lower()
    check_codes(table, "dx", HAM10000, path, "Metadata")
    check_unique(table, "image_id", path, "Metadata")
    check_one_diagnosis_per_lesion(table, str(path))
    return table


def image_folders(root: Path) -> list[Path]:
    """The image folders, canonical ones first, so the lower-case copies only fill in ids the
    canonical folders lack; then the root itself."""
    folders = [child for child in root.iterdir()
               if child.is_dir() and child.name.lower().startswith("ham10000_images")]
    folders.sort(key=lambda folder: (folder.name not in IMAGE_FOLDERS, folder.name))
    return [*folders, root]


def read(root: Path, options: LabelOptions) -> Dataset:
    metadata_path = root / METADATA_FILE
    metadata = read_metadata(metadata_path)
    on_disk = index_images(image_folders(root))
    found, missing = match_images(metadata, on_disk, metadata_path)
    extra = unlisted(on_disk, metadata["image_id"], root, METADATA_FILE)
    return Dataset(dataset_table(found), root, "kaggle", HAM10000, "lesion_id", missing, extra)


FORMAT = register(DatasetFormat(
    name="ham10000", title="HAM10000", expects=f"{METADATA_FILE} beside HAM10000_images_part_1/ and _2/",
    source="Kaggle kmader/skin-cancer-mnist-ham10000 (scripts/01_download_data.py)",
    find=find, read=read, licence="CC BY-NC 4.0 (attribution, non-commercial use only)",
    citation=("Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset, a large collection of "
              "multi-source dermatoscopic images of common pigmented skin lesions. Sci. Data 5, 180161 "
              "(2018). doi:10.1038/sdata.2018.161."),
    sheet=HAM10000_SHEET))
