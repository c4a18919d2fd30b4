"""Find and validate a HAM10000-style dataset on disk.

Two layouts are understood:

* the Kaggle layout (``kmader/skin-cancer-mnist-ham10000``): ``HAM10000_metadata.csv`` beside
  ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``. The Kaggle zip also carries
  lower-case copies of both image folders and ``hmnist_*.csv`` files; each image is counted once.
* the class-folder layout: ``train/AKIEC/*.jpg``, ``train/BCC/...``, with optional ``val/`` and
  ``test/`` folders, class names in any case. It has no lesion ids, so each image is treated as
  its own lesion.

Everything is checked before anything is split or trained, and every problem is reported with
the file, the line and what to do about it.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skin_lesion.data.files import is_image_file, list_some
from skin_lesion.data.ham10000 import HAM10000
from skin_lesion.errors import DatasetError
from skin_lesion.tasks import LabelSpace

log = logging.getLogger(__name__)

METADATA_FILE = "HAM10000_metadata.csv"
IMAGE_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
#: The patient metadata columns: used by the metadata branch of the model when present.
PATIENT_COLUMNS = ("age", "sex", "localization")
METADATA_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", *PATIENT_COLUMNS)
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")
SEPARATORS = ",;\t|"
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
#: Share of listed images that may be missing (or undecodable) before a step refuses to go on.
MISSING_ABORT_FRACTION = 0.05


@dataclass
class Dataset:
    """A validated image table and what was noticed while building it.

    ``table`` has one row per usable image: ``image_id``, ``lesion_id``, ``dx`` (lower-case code),
    ``age``, ``sex``, ``localization`` (as in the metadata file; empty where it has none),
    ``image_path`` (absolute) and ``split`` (the folder's split in the class-folder layout, else
    empty). ``label_space`` is the diagnoses the layout defines (both layouts are HAM10000's).
    """

    table: pd.DataFrame
    source_dir: Path
    layout: str
    label_space: LabelSpace
    missing_images: list[str] = field(default_factory=list)
    unlisted_images: list[str] = field(default_factory=list)


def check_missing_fraction(missing: list[str], total: int, what: str, source: Path) -> None:
    """Warn about a few unusable images; abort when they are 5 % or more of the dataset."""
    if not missing:
        return
    fraction = len(missing) / max(total, 1)
    message = (
        f"{len(missing)} of {total} images listed in {source} are {what} "
        f"({fraction:.1%}): {list_some(missing)}"
    )
    if fraction >= MISSING_ABORT_FRACTION:
        raise DatasetError(
            f"{message}. That is {MISSING_ABORT_FRACTION:.0%} or more, so the data is probably "
            "incomplete: re-download or re-extract it (scripts/01_download_data.py)."
        )
    log.warning("%s. They are left out and recorded in the output summary.", message)


def find_metadata(root: Path) -> Path | None:
    """The metadata CSV in ``root`` or one folder below it (a zip extracted into a subfolder)."""
    candidates = [root / METADATA_FILE, *sorted(root.glob(f"*/{METADATA_FILE}"))]
    return next((path for path in candidates if path.is_file()), None)


def load_dataset(root: Path) -> Dataset:
    """Detect the layout of ``root`` and return its validated image table."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(
            f"Data folder {root} does not exist. Download HAM10000 with "
            "scripts/01_download_data.py, make the sample with scripts/00_make_sample_data.py, "
            "or pass the folder with --data-dir."
        )
    metadata = find_metadata(root)
    if metadata is not None:
        return load_kaggle_layout(metadata.parent)
    if any(child.is_dir() and child.name.lower() in SPLIT_FOLDERS for child in root.iterdir()):
        return load_class_folder_layout(root)
    raise DatasetError(
        f"{root} holds neither {METADATA_FILE} (Kaggle layout) nor train/<CLASS>/ folders "
        "(class-folder layout). Point --data-dir at the folder that contains them."
    )


# --- Kaggle layout -----------------------------------------------------------------------


def detect_separator(text: str) -> str:
    """The field separator of a CSV text (comma, semicolon, tab or bar); comma if unclear.

    Spreadsheet programs in many locales save "CSV" with semicolons.
    """
    try:
        return csv.Sniffer().sniff(text[: 64 * 1024], delimiters=SEPARATORS).delimiter
    except csv.Error:
        return ","


def read_metadata(path: Path) -> pd.DataFrame:
    """Read and check ``HAM10000_metadata.csv``; ``dx`` comes back as lower-case codes."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise DatasetError(f"Metadata file {path} is empty; re-download or re-extract the dataset.")
    separator = detect_separator(text)
    if separator != ",":
        log.info("Reading %s as a %r-separated file.", path, separator)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, sep=separator)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DatasetError(f"Metadata file {path} is not a readable CSV file: {error}") from error
    table.columns = [column.strip() for column in table.columns]
    missing_columns = [column for column in REQUIRED_COLUMNS if column not in table.columns]
    if missing_columns:
        raise DatasetError(
            f"Metadata file {path} lacks the column(s) {', '.join(missing_columns)}; "
            f"it has {', '.join(table.columns) or 'none'}. HAM10000 metadata needs "
            f"{', '.join(METADATA_COLUMNS)} (at least {', '.join(REQUIRED_COLUMNS)}), "
            f"separated by commas (or by one of {SEPARATORS!r} throughout)."
        )
    if table.empty:
        raise DatasetError(f"Metadata file {path} has a header but no rows.")
    for column in REQUIRED_COLUMNS:
        table[column] = table[column].str.strip()
    table["dx"] = table["dx"].str.lower()
    line = table.index + 2  # line numbers as an editor shows them (line 1 is the header)

    for column in REQUIRED_COLUMNS:
        blank = line[table[column] == ""]
        if len(blank):
            raise DatasetError(f"Metadata file {path}: empty {column} on line(s) {list_some(blank)}.")

    unknown = table.loc[~table["dx"].isin(HAM10000.codes), "dx"]
    if len(unknown):
        raise DatasetError(
            f"Metadata file {path}: unknown dx code(s) {list_some(sorted(set(unknown)))} on "
            f"line(s) {list_some(line[unknown.index])}. Known codes: {', '.join(HAM10000.codes)}."
        )

    duplicated = table["image_id"].duplicated(keep=False)
    if duplicated.any():
        raise DatasetError(
            f"Metadata file {path}: image_id listed more than once: "
            f"{list_some(sorted(set(table.loc[duplicated, 'image_id'])))} (lines "
            f"{list_some(line[duplicated])}). Each image must appear on one line."
        )
    check_one_diagnosis_per_lesion(table, str(path))
    return table


def lesions_with_several(table: pd.DataFrame, column: str) -> list[str]:
    """Lesion ids whose images disagree on ``column`` (a diagnosis, a split ...)."""
    values_per_lesion = table.groupby("lesion_id")[column].nunique()
    return sorted(values_per_lesion[values_per_lesion > 1].index)


def check_one_diagnosis_per_lesion(table: pd.DataFrame, source: str) -> None:
    """A lesion is one diagnosis; two would make a stratified lesion-level split ambiguous."""
    conflicting = lesions_with_several(table, "dx")
    if conflicting:
        raise DatasetError(
            f"{source}: lesion(s) {list_some(conflicting)} have images with different dx "
            "codes; every image of a lesion must carry the lesion's diagnosis."
        )


def index_kaggle_images(root: Path) -> dict[str, Path]:
    """Map image id to file over the image folders, counting each image once.

    The canonical ``HAM10000_images_part_*`` folders are read first, so the lower-case copies
    that the Kaggle zip also carries only fill in ids the canonical folders lack.
    """
    folders = [
        child for child in root.iterdir()
        if child.is_dir() and child.name.lower().startswith("ham10000_images")
    ]
    folders.sort(key=lambda folder: (folder.name not in IMAGE_FOLDERS, folder.name))
    index: dict[str, Path] = {}
    for folder in [*folders, root]:
        for path in sorted(folder.iterdir()):
            if is_image_file(path):
                index.setdefault(path.stem, path)
    return index


def load_kaggle_layout(root: Path) -> Dataset:
    metadata_path = root / METADATA_FILE
    metadata = read_metadata(metadata_path)
    on_disk = index_kaggle_images(root)
    listed = set(metadata["image_id"])

    present = metadata["image_id"].isin(on_disk.keys())
    missing = sorted(metadata.loc[~present, "image_id"])
    check_missing_fraction(missing, len(metadata), "missing on disk", metadata_path)
    unlisted = sorted(image_id for image_id in on_disk if image_id not in listed)
    if unlisted:
        log.warning(
            "%d image file(s) in %s are not listed in %s and are not used: %s",
            len(unlisted), root, METADATA_FILE, list_some(unlisted),
        )
    table = metadata.loc[present].reindex(columns=["image_id", "lesion_id", "dx", *PATIENT_COLUMNS],
                                          fill_value="")
    table["image_path"] = [str(on_disk[image_id]) for image_id in table["image_id"]]
    table["split"] = ""
    return Dataset(table.reset_index(drop=True), root, "kaggle", HAM10000, missing, unlisted)


# --- class-folder layout -----------------------------------------------------------------


def load_class_folder_layout(root: Path) -> Dataset:
    codes = {dx.lower(): dx for dx in HAM10000.codes}
    rows, ignored = [], []
    for split_folder in sorted(root.iterdir()):
        split = SPLIT_FOLDERS.get(split_folder.name.lower())
        if not split_folder.is_dir() or split is None:
            continue
        for class_folder in sorted(split_folder.iterdir()):
            if not class_folder.is_dir():
                ignored.append(class_folder)
                continue
            dx = codes.get(class_folder.name.lower())
            if dx is None:
                raise DatasetError(
                    f"Class folder {class_folder} is not a HAM10000 diagnosis; name class "
                    f"folders after the codes {', '.join(HAM10000.codes)} (any case)."
                )
            for path in sorted(class_folder.iterdir()):
                if is_image_file(path):
                    rows.append((path.stem, path.stem, dx, "", "", "", str(path), split))
                else:
                    ignored.append(path)
    if ignored:
        log.warning("%d file(s) that are not images are not used: %s", len(ignored), list_some(ignored))
    if not rows:
        raise DatasetError(f"No images found under {root}/<split>/<CLASS>/.")
    table = pd.DataFrame(rows, columns=["image_id", "lesion_id", "dx", *PATIENT_COLUMNS,
                                        "image_path", "split"])
    duplicated = table["image_id"].duplicated(keep=False)
    if duplicated.any():
        raise DatasetError(
            f"Image name(s) found in more than one folder under {root}: "
            f"{list_some(table.loc[duplicated, 'image_path'])}. Image names must be unique."
        )
    if "train" not in set(table["split"]):
        raise DatasetError(f"{root} has no train/ folder with images; it is required.")
    log.warning(
        "Class-folder layout at %s has no lesion ids: each image is treated as its own lesion, "
        "so images of one lesion may land in different splits.", root,
    )
    return Dataset(table, root, "class_folders", HAM10000)
