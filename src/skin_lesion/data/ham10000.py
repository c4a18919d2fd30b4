"""HAM10000's label space and data sheet, and the reader of records written before label spaces
existed.

The seven HAM10000 diagnoses, alphabetical, are the output order of its 7-class models; akiec,
bcc and mel are malignant. Split summaries, run records, model files and calibration files of
earlier versions name only their task (``binary`` or ``multiclass``): they were all HAM10000's,
so :func:`task_of_record` reads them over this label space. It is the one place that does.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skin_lesion.errors import ConfigError
from skin_lesion.tasks import KINDS, LabelSpace, Task

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


@dataclass(frozen=True)
class DataSheet:
    """What the model card and the web app say about the data a model learnt from."""

    summary: str
    factors: str
    licence: str
    citation: str
    imbalance: str = ""


HAM10000_SHEET = DataSheet(
    summary="HAM10000 dermoscopic images, mostly of light skin",
    factors=("HAM10000 was collected at two sites (Vienna, Austria, and Queensland, Australia) with a "
             "few dermoscope models; patients are predominantly of light skin types (the dataset "
             "records no skin type). Performance on darker skin, other devices and other populations "
             "is unknown. More than half of the diagnoses are confirmed by histopathology, most nevi "
             "by follow-up or expert consensus."),
    licence="trained on HAM10000 (CC BY-NC 4.0): non-commercial use only",
    citation=("Tschandl P., Rosendahl C., Kittler H. The HAM10000 dataset, a large collection of "
              "multi-source dermatoscopic images of common pigmented skin lesions. Sci. Data 5, 180161 "
              "(2018). doi:10.1038/sdata.2018.161. Licence: CC BY-NC 4.0 (attribution, non-commercial)."),
    imbalance="nevi are about two thirds of HAM10000",
)


def data_sheet(space: LabelSpace) -> DataSheet:
    """HAM10000's data sheet for its label space; for another, what can be said without one."""
    if space.name == HAM10000.name:
        return HAM10000_SHEET
    return DataSheet(summary=f"{space.name} images",
                     factors=(f"Where and with which devices {space.name} was collected, and from which "
                              "patients, is not recorded with the model: performance outside that "
                              "population is unknown."),
                     licence=f"trained on {space.name}: its licence applies",
                     citation=f"Cite {space.name} as its authors ask.")


def label_space_of(record: dict, source: str = "a record") -> LabelSpace:
    """The label space a record carries; HAM10000's for records (or missing ones, ``{}``) of
    earlier versions. ``source`` names the record in errors."""
    return LabelSpace.from_dict(record["label_space"], source) if "label_space" in record else HAM10000


def task_of_record(record: dict, source: str) -> Task:
    """The task a record (split summary, run record, model description, calibration) describes
    over its label space. ``source`` names the record in errors."""
    if not isinstance(record, dict) or record.get("task") not in KINDS:
        raise ConfigError(f"{source} names no task ({', '.join(KINDS)}); was it written by this project?")
    return Task(record["task"], label_space_of(record, source))


def task_of_outputs(units: int, path: Path) -> Task:
    """The task of a model saved elsewhere, from its output units: 1 is benign vs malignant,
    seven are the HAM10000 diagnoses (the only models such files can have been made for)."""
    for kind in KINDS:
        task = Task(kind, HAM10000)
        if task.num_outputs == units:
            return task
    raise ConfigError(f"{path} has {units} outputs and does not say what they mean; models "
                      f"without this project's description must have 1 (benign vs malignant) or "
                      f"{len(HAM10000.codes)} (the HAM10000 diagnoses).")
