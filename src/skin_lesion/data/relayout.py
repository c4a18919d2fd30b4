"""The HAM10000-layout sample re-laid out as the other datasets' files, for tests and for users
to see what each layout looks like (``00_make_sample_data.py --layout``).

The same drawn images under each dataset's file names and label files, with its quirks: ISIC
2019's ``_downsampled`` names, rows without a lesion id and no SCC or UNK image; ISIC 2020's
patients (two lesions each), benign/malignant target and a duplicates list; PAD-UFES-20's PNG
files, patients and biopsy flag (where HAM10000 says histopathology), without the diagnoses it
lacks (df, vasc); an image list with its
``labels.json``. JPEGs are copied byte for byte, so a model scores them exactly as in HAM10000's
layout. What the data is goes along (``provenance.json``): the re-laid sample stays synthetic.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import cv2
import pandas as pd

from skin_lesion.data.dataset import Dataset, write_provenance_file
from skin_lesion.data.datasets import isic2019, isic2020, pad_ufes20
from skin_lesion.data.datasets.ham10000 import HAM10000
from skin_lesion.errors import OverwriteError
from skin_lesion.io_utils import staging_dir

#: HAM10000 codes as ISIC 2019's and PAD-UFES-20's columns spell them (PAD has no df or vasc).
ISIC2019_CODES = {"akiec": "AK", "bcc": "BCC", "bkl": "BKL", "df": "DF", "mel": "MEL", "nv": "NV", "vasc": "VASC"}
PAD_CODES = {"akiec": "ACK", "bcc": "BCC", "bkl": "SEK", "mel": "MEL", "nv": "NEV"}


def patients(table: pd.DataFrame) -> pd.Series:
    """A made-up patient per two lesions, for the layouts that name patients."""
    number = {lesion: index // 2 for index, lesion in enumerate(sorted(table["lesion_id"].unique()))}
    return table["lesion_id"].map(lambda lesion: f"SYN_P_{number[lesion]:07d}")


def copy_images(table: pd.DataFrame, folder: Path, names: list[str] | None = None) -> None:
    """The table's JPEGs into ``folder``, byte for byte, as ``<name>.jpg`` (default: the image id)."""
    folder.mkdir()
    for name, path in zip(names or table["image_id"], table["image_path"]):
        shutil.copyfile(path, folder / f"{name}.jpg")


def write_isic2019(table: pd.DataFrame, folder: Path) -> None:
    names = [f"{image_id}{isic2019.DOWNSAMPLED}" if position % 7 == 0 else image_id
             for position, image_id in enumerate(table["image_id"])]
    copy_images(table, folder / isic2019.IMAGE_FOLDER, names)
    truth = pd.DataFrame({"image": names})
    for column in (*ISIC2019_CODES.values(), "SCC", "UNK"):
        truth[column] = 0.0
    for position, dx in enumerate(table["dx"]):
        truth.loc[position, ISIC2019_CODES[dx]] = 1.0
    truth.to_csv(folder / isic2019.GROUND_TRUTH_FILE, index=False, lineterminator="\n")
    single = table.groupby("lesion_id")["image_id"].transform("size") == 1
    pd.DataFrame({"image": names, "age_approx": table["age"], "anatom_site_general": table["localization"],
                  "lesion_id": table["lesion_id"].where(~single, ""), "sex": table["sex"]}).to_csv(
        folder / isic2019.METADATA_FILE, index=False, lineterminator="\n")


def write_isic2020(table: pd.DataFrame, folder: Path) -> None:
    copy_images(table, folder / "train")
    malignant = pd.Series(HAM10000.is_malignant(table["dx"]).astype(bool))
    pd.DataFrame({"image_name": table["image_id"], "patient_id": patients(table), "sex": table["sex"],
                  "age_approx": table["age"], "anatom_site_general_challenge": table["localization"],
                  "diagnosis": table["dx"], "benign_malignant": malignant.map({True: "malignant", False: "benign"}),
                  "target": malignant.astype(int)}).to_csv(folder / "train.csv", index=False, lineterminator="\n")
    pair = table["image_id"].iloc[[0, -1]].tolist()  # two patients' images, published as duplicates
    pd.DataFrame({"image_name_1": [pair[0]], "image_name_2": [pair[1]]}).to_csv(
        folder / isic2020.DUPLICATES_FILE, index=False, lineterminator="\n")


def write_pad_ufes20(table: pd.DataFrame, folder: Path) -> None:
    table = table[table["dx"].isin(PAD_CODES)].reset_index(drop=True)
    images = folder / "images"
    images.mkdir()
    for image_id, path in zip(table["image_id"], table["image_path"]):
        cv2.imwrite(str(images / f"{image_id}.png"), cv2.imread(path))
    pd.DataFrame({"patient_id": patients(table), "lesion_id": table["lesion_id"].str.replace(r"\D", "", regex=True),
                  "age": table["age"].str.replace(".0", "", regex=False), "gender": table["sex"].str.upper(),
                  "region": table["localization"].str.upper(), "fitspatrick": "2",
                  "biopsed": table["dx_type"].eq("histo").map({True: "True", False: "False"}),
                  "diagnostic": table["dx"].map(PAD_CODES), "img_id": table["image_id"] + ".png"}).to_csv(
        folder / pad_ufes20.METADATA_FILE, index=False, lineterminator="\n")


def write_image_list(table: pd.DataFrame, folder: Path) -> None:
    copy_images(table, folder / "images")
    pd.DataFrame({"path": "images/" + table["image_id"] + ".jpg", "label": table["dx"], "group": table["lesion_id"],
                  "age": table["age"], "sex": table["sex"], "site": table["localization"]}).to_csv(
        folder / "images.csv", index=False, lineterminator="\n")
    (folder / "labels.json").write_text(json.dumps({"name": "synthetic sample as an image list",
                                                     "malignant": list(HAM10000.malignant_codes)}, indent=2) + "\n")


WRITERS: dict[str, Callable[[pd.DataFrame, Path], None]] = {
    "isic2019": write_isic2019, "isic2020": write_isic2020, "pad-ufes-20": write_pad_ufes20,
    "image-list": write_image_list}


def relay(dataset: Dataset, out_dir: Path, layout: str, force: bool = False) -> Path:
    """Write ``dataset`` (HAM10000's layout) in another ``layout`` into ``out_dir``, with its
    provenance; returns what to pass as ``--data-dir`` (the folder, or an image list's CSV)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not force:
        raise OverwriteError(f"{out_dir} already exists; pass --force to rebuild it or choose another folder.")
    table = dataset.table.sort_values("image_id").reset_index(drop=True)
    with staging_dir(out_dir, replace=force) as build_dir:
        WRITERS[layout](table, build_dir)
        if dataset.provenance:
            write_provenance_file(build_dir, dataset.provenance)
    return out_dir / "images.csv" if layout == "image-list" else out_dir
