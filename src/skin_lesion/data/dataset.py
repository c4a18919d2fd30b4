"""What every dataset reader returns, and the checks they share.

A reader (one module per dataset in ``skin_lesion.data.datasets``) turns the files of one
dataset into a :class:`Dataset`: one row per usable image, in the same columns whatever the
source, with the label space the data defines. Everything is checked before anything is split or
trained, and every problem is reported with the file, the line and what to do about it.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from skin_lesion.data.files import is_image_file, list_some
from skin_lesion.errors import DatasetError
from skin_lesion.tasks import LabelSpace

log = logging.getLogger(__name__)

#: The patient metadata columns: used by the metadata branch of the model when present.
PATIENT_COLUMNS = ("age", "sex", "localization")
#: The columns of every dataset's table, whatever its source.
TABLE_COLUMNS = ("image_id", "lesion_id", "patient_id", "dx", "dx_type", *PATIENT_COLUMNS, "image_path", "split")
#: What a split keeps together (images of one lesion, or every image of one patient), as people say it.
GROUP_NAMES = {"lesion_id": "lesion", "patient_id": "patient"}
SEPARATORS = ",;\t|"
#: Share of listed images that may be missing (or undecodable) before a step refuses to go on.
MISSING_ABORT_FRACTION = 0.05
#: A file beside the data that says what it is; it wins over what its layout's reader would record.
PROVENANCE_FILE = "provenance.json"


@dataclass(frozen=True)
class Provenance:
    """What the data is: its name, where it comes from, its licence and whether it is synthetic.

    A layout says nothing about where images come from (the generated sample has HAM10000's
    files, not its lesions), so this record travels from the reader through the split summary
    and the run's record into the model file, and the model card, the data report, the app and
    the console say what the data was from it.
    """

    name: str
    source: str
    licence: str
    synthetic: bool = False
    citation: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, record, where: str) -> "Provenance":
        """The record of a ``provenance.json`` or of a run's files; ``where`` names it in errors."""
        fields = {"name": str, "source": str, "licence": str, "synthetic": bool}
        if not isinstance(record, dict) or any(not isinstance(record.get(key), kind) for key, kind in fields.items()):
            raise DatasetError(f"{where} must say what the data is: an object with name, source and licence "
                               "(text) and synthetic (true or false).")
        return cls(record["name"], record["source"], record["licence"], record["synthetic"],
                   str(record.get("citation", "")))

    def caveat(self) -> str:
        """What must stand beside any figure measured on synthetic data; empty for real data."""
        if not self.synthetic:
            return ""
        return (f"The data is synthetic: {self.name}, made by {self.source}, holds generated images, not "
                "photographs of skin lesions. Figures measured on it show that the code runs; they say nothing "
                "about real lesions.")


def read_provenance_file(folder: Path) -> Provenance | None:
    """The ``provenance.json`` in ``folder``, if there is one."""
    path = Path(folder) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error}).") from None
    return Provenance.from_dict(record, str(path))


def write_provenance_file(folder: Path, provenance: Provenance) -> None:
    (Path(folder) / PROVENANCE_FILE).write_text(json.dumps(provenance.as_dict(), indent=2) + "\n", encoding="utf-8")


@dataclass
class Dataset:
    """A validated image table and what was noticed while building it.

    ``table`` has the columns ``TABLE_COLUMNS``: ``image_id``, ``lesion_id`` (the image's own id
    where the data names no lesion), ``patient_id`` (empty where it names no patient), ``dx``
    (the diagnosis code, as the label space spells it), ``dx_type`` (how the diagnosis was
    confirmed, in HAM10000's codes histo, follow_up, consensus, confocal, or no_biopsy; empty
    where the source does not say), ``age``, ``sex``, ``localization`` (as the source writes
    them; empty where it has none), ``image_path`` (absolute) and ``split`` (a split the source
    gives, else empty). ``group_by`` is what a split keeps together.
    ``provenance`` is what the data is (``load_dataset`` records it for every reader).
    """

    table: pd.DataFrame
    source_dir: Path
    layout: str
    label_space: LabelSpace
    group_by: str = "lesion_id"
    missing_images: list[str] = field(default_factory=list)
    unlisted_images: list[str] = field(default_factory=list)
    provenance: Provenance | None = None


def dataset_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` in the columns every dataset has (absent ones empty), as text, indexed from 0."""
    table = rows.reindex(columns=list(TABLE_COLUMNS), fill_value="").fillna("")
    return table.astype(str).reset_index(drop=True)


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


def detect_separator(text: str) -> str:
    """The field separator of a CSV text (comma, semicolon, tab or bar); comma if unclear.

    Spreadsheet programs in many locales save "CSV" with semicolons.
    """
    try:
        return csv.Sniffer().sniff(text[: 64 * 1024], delimiters=SEPARATORS).delimiter
    except csv.Error:
        return ","


def read_csv_table(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    """A CSV file as text columns (stripped names and values), with its required columns and
    at least one row; ``what`` names the file in errors (``HAM10000 metadata``)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise DatasetError(f"{what} file {path} is empty; re-download or re-extract the dataset.")
    separator = detect_separator(text)
    if separator != ",":
        log.info("Reading %s as a %r-separated file.", path, separator)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, sep=separator)
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DatasetError(f"{what} file {path} is not a readable CSV file: {error}") from error
    table.columns = [column.strip() for column in table.columns]
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise DatasetError(
            f"{what} file {path} lacks the column(s) {', '.join(missing)}; it has "
            f"{', '.join(table.columns) or 'none'}. It needs at least {', '.join(required)}, separated "
            f"by commas (or by one of {SEPARATORS!r} throughout).")
    if table.empty:
        raise DatasetError(f"{what} file {path} has a header but no rows.")
    table = table.apply(lambda column: column.str.strip())
    check_no_blanks(table, required, path, what)
    return table


def has_columns(path: Path, columns: tuple[str, ...]) -> bool:
    """Whether ``path`` is a CSV file whose header names ``columns`` (any case): how a reader
    recognises its label file without reading the whole of it."""
    if not path.is_file():
        return False
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    names = {name.strip().strip('"').lower() for name in header.split(detect_separator(header))}
    return {column.lower() for column in columns} <= names


def line_numbers(table: pd.DataFrame) -> pd.Index:
    """Line numbers as an editor shows them (line 1 is the header)."""
    return table.index + 2


def check_no_blanks(table: pd.DataFrame, columns: tuple[str, ...], path: Path, what: str) -> None:
    for column in columns:
        blank = line_numbers(table)[(table[column] == "").to_numpy()]
        if len(blank):
            raise DatasetError(f"{what} file {path}: empty {column} on line(s) {list_some(blank)}.")


def check_unique(table: pd.DataFrame, column: str, path: Path, what: str) -> None:
    """Each value of ``column`` on one line only."""
    duplicated = table[column].duplicated(keep=False)
    if duplicated.any():
        raise DatasetError(
            f"{what} file {path}: {column} listed more than once: "
            f"{list_some(sorted(set(table.loc[duplicated, column])))} (lines "
            f"{list_some(line_numbers(table)[duplicated.to_numpy()])}). Each image must appear on one line.")


def check_codes(table: pd.DataFrame, column: str, space: LabelSpace, path: Path, what: str) -> None:
    """Every diagnosis in ``column`` is one of the label space's codes."""
    unknown = table.loc[~table[column].isin(space.codes), column]
    if len(unknown):
        raise DatasetError(
            f"{what} file {path}: unknown {column} code(s) {list_some(sorted(set(unknown)))} on "
            f"line(s) {list_some(line_numbers(table)[unknown.index])}. Known codes: {', '.join(space.codes)}.")


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


def index_images(folders: list[Path], recursive: bool = False) -> dict[str, Path]:
    """Map image id (the file name without extension) to file over ``folders``, in order: an id
    found in an earlier folder is kept (a download's duplicate copies are counted once)."""
    index: dict[str, Path] = {}
    for folder in folders:
        paths = folder.rglob("*") if recursive else folder.iterdir()
        for path in sorted(paths):
            if is_image_file(path) and not any(part.startswith(".") for part in path.relative_to(folder).parts):
                index.setdefault(path.stem, path)
    return index


def match_images(table: pd.DataFrame, on_disk: dict[str, Path], source: Path) -> tuple[pd.DataFrame, list[str]]:
    """The rows whose ``image_id`` has a file (with its path in ``image_path``) and the ids
    without one; too many missing stops here (``check_missing_fraction``)."""
    present = table["image_id"].isin(on_disk.keys())
    missing = sorted(table.loc[~present, "image_id"])
    check_missing_fraction(missing, len(table), "missing on disk", source)
    found = table.loc[present].copy()
    found["image_path"] = [str(on_disk[image_id]) for image_id in found["image_id"]]
    return found, missing


def unlisted(on_disk: dict[str, Path], listed, folder: Path, listing: str) -> list[str]:
    """Image files that the listing does not name: reported, not used."""
    listed = set(listed)
    names = sorted(image_id for image_id in on_disk if image_id not in listed)
    if names:
        log.warning("%d image file(s) in %s are not listed in %s and are not used: %s",
                    len(names), folder, listing, list_some(names))
    return names
