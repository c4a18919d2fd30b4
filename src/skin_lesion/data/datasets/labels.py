"""Label spaces that the data names, and how one dataset's diagnoses read in another's.

An image list or class folders name their classes but not which are malignant: that comes from
``--malignant CODE ...`` or from a ``labels.json`` beside the data::

    {"name": "My clinic 2025", "malignant": ["mel", "bcc"],
     "display_names": {"mel": "Melanoma", "bcc": "Basal cell carcinoma"}}

``SYNONYMS`` is the one table of diagnoses that different datasets spell differently. External
validation reads another dataset's diagnoses in the model's label space through it; a diagnosis
with no counterpart is reported and counts as malignant or benign by its own dataset's rule.

=====================================  ========  =========  =========  ============
diagnosis                              HAM10000  ISIC 2019  PAD-UFES   ISIC 2020
=====================================  ========  =========  =========  ============
actinic keratosis (HAM: and Bowen's)   akiec     ak         ack        —
melanocytic nevus                      nv        nv         nev        —
seborrheic / benign keratosis          bkl       bkl        sek        —
basal cell carcinoma                   bcc       bcc        bcc        —
melanoma                               mel       mel        mel        —
squamous cell carcinoma                —         scc        scc        —
dermatofibroma, vascular lesion        df, vasc  df, vasc   —          —
benign vs malignant only               —         —          —          benign, malignant
=====================================  ========  =========  =========  ============
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from skin_lesion.data.datasets.registry import LabelOptions
from skin_lesion.errors import DatasetError
from skin_lesion.tasks import LabelSpace

log = logging.getLogger(__name__)

#: Codes that name the same diagnosis in different datasets.
SYNONYMS: tuple[frozenset[str], ...] = (
    frozenset({"akiec", "ak", "ack"}),
    frozenset({"nv", "nev"}),
    frozenset({"bkl", "sek"}),
)


def counterpart(code: str, space: LabelSpace) -> str | None:
    """The code of ``space`` that names the same diagnosis as ``code``, or None."""
    if code in space.codes:
        return code
    group = next((group for group in SYNONYMS if code in group), frozenset())
    return next((other for other in space.codes if other in group), None)


def read_labels_file(path: Path) -> dict:
    """``labels.json`` as a dict (empty when there is none), with clear errors."""
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error}); see the README's image-list section.") from None
    if not isinstance(record, dict) or not isinstance(record.get("malignant", []), list):
        raise DatasetError(f'{path} must be an object such as {{"malignant": ["mel", "bcc"]}}.')
    return record


def label_space_from_names(names: list[str], default_name: str, options: LabelOptions, labels_file: Path,
                           what: str) -> LabelSpace:
    """The label space of data that names its classes ``names``: malignant codes from
    ``--malignant`` or ``labels_file``; display names and a name from the file where given."""
    record = read_labels_file(labels_file)
    malignant = options.malignant if options.malignant is not None else record.get("malignant")
    if malignant is None:
        raise DatasetError(
            f"The {what} name their classes ({', '.join(names)}) but not which are malignant: pass "
            f'--malignant CODE ... or write {labels_file} with {{"malignant": [...]}}.')
    malignant = [str(code).lower() for code in malignant]
    unknown = sorted(set(malignant) - set(names))
    if unknown:
        raise DatasetError(f"Malignant code(s) {', '.join(unknown)} (from "
                           f"{'--malignant' if options.malignant is not None else labels_file}) are not "
                           f"among the classes of the {what}: {', '.join(names)}.")
    shown = record.get("display_names", {}) if isinstance(record.get("display_names"), dict) else {}
    return LabelSpace(name=str(record.get("name", default_name)), codes=tuple(names),
                      display_names=tuple(str(shown.get(code, code)) for code in names),
                      malignant=frozenset(malignant))


def with_images_only(space: LabelSpace, present: set[str]) -> LabelSpace:
    """``space`` without the diagnoses that have no image here (a model cannot learn them, and a
    7-class split would refuse them); a warning names them."""
    absent = [code for code in space.codes if code not in present]
    if not absent:
        return space
    log.warning("%s: no image of %s in this data; left out of the model's classes.", space.name,
                ", ".join(absent))
    kept = [code for code in space.codes if code in present]
    return LabelSpace(space.name, tuple(kept), tuple(space.display_name(code) for code in kept),
                      space.malignant & set(kept))
