"""Patient metadata as a model input: age, sex and lesion site, encoded the same way everywhere.

The encoding is fitted on the training split and saved with the run (``metadata_encoding.json``)
and inside the model file, so evaluation, inference and the web app reproduce it exactly:

* age: standardised with the training mean and standard deviation, plus a 0/1 "age missing"
  column (a missing age is encoded as the training mean);
* sex and localization: one-hot over the values seen in training, plus an ``unknown`` column
  for a blank, ``unknown`` or never-seen value. A site another dataset spells differently is
  read through the shared site vocabulary (``skin_lesion.data.sites``) first.

An image without any metadata gets the all-unknown encoding and a note, never an error.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from skin_lesion.data.dataset import PATIENT_COLUMNS
from skin_lesion.data.sites import as_known_site

UNKNOWN = "unknown"
CATEGORICAL = ("sex", "localization")


def clean_category(values: pd.Series) -> pd.Series:
    """Lower-case, stripped values; blanks and NaN become ``unknown``."""
    text = values.fillna("").astype(str).str.strip().str.lower()
    return text.where(text != "", UNKNOWN)


def parse_age(values: pd.Series) -> pd.Series:
    """Ages as floats; blanks, text and negative numbers become NaN (missing)."""
    ages = pd.to_numeric(values, errors="coerce").astype(float)
    return ages.where(ages >= 0)


@dataclass(frozen=True)
class MetadataEncoding:
    """How ``age``, ``sex`` and ``localization`` become the model's ``metadata`` input."""

    age_mean: float
    age_std: float
    sex: tuple[str, ...]  # known categories, in column order; ``unknown`` is added last
    localization: tuple[str, ...]

    @classmethod
    def fit(cls, table: pd.DataFrame) -> "MetadataEncoding":
        """Fit on the training split: age statistics and the categories it holds."""
        ages = parse_age(table.get("age", pd.Series(dtype=str))).dropna()
        if ages.empty:
            mean, std = 50.0, 20.0  # no age at all in training: any fixed scale will do
        else:
            mean, std = float(ages.mean()), float(ages.std(ddof=0)) or 1.0

        def categories(column: str) -> tuple[str, ...]:
            values = clean_category(table.get(column, pd.Series(dtype=str)))
            return tuple(sorted(set(values) - {UNKNOWN}))

        return cls(round(mean, 6), round(std, 6), categories("sex"), categories("localization"))

    @classmethod
    def from_dict(cls, values: dict) -> "MetadataEncoding":
        return cls(float(values["age_mean"]), float(values["age_std"]),
                   tuple(values["sex"]), tuple(values["localization"]))

    def as_dict(self) -> dict:
        return {**asdict(self), "columns": list(self.columns)}

    @property
    def columns(self) -> tuple[str, ...]:
        """The feature names, in the order of the model's metadata input."""
        return ("age", "age_missing",
                *(f"sex={value}" for value in (*self.sex, UNKNOWN)),
                *(f"localization={value}" for value in (*self.localization, UNKNOWN)))

    @property
    def width(self) -> int:
        return len(self.columns)

    def encode(self, table: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
        """The metadata input for each row of ``table``, and a note per row ('' if complete).

        Missing columns count as missing values. Notes name what was missing or not known
        from training, e.g. ``age missing; localization 'palm' not seen in training``.
        """
        rows = len(table)
        column = {name: table[name] if name in table else pd.Series([""] * rows, index=table.index)
                  for name in PATIENT_COLUMNS}
        notes = [[] for _ in range(rows)]
        ages = parse_age(column["age"]).to_numpy()
        missing_age = np.isnan(ages)
        for row in np.flatnonzero(missing_age):
            notes[row].append("age missing")
        features = [np.where(missing_age, 0.0, (ages - self.age_mean) / self.age_std),
                    missing_age.astype(float)]
        for name in CATEGORICAL:
            known = getattr(self, name)
            values = clean_category(column[name]).to_numpy()
            if name == "localization":
                values = [as_known_site(value, known) or value for value in values]
            for row, value in enumerate(values):
                if value == UNKNOWN:
                    notes[row].append(f"{name} unknown")
                elif value not in known:
                    notes[row].append(f"{name} {value!r} not seen in training, encoded as unknown")
            index = {value: position for position, value in enumerate(known)}
            positions = np.array([index.get(value, len(known)) for value in values], int)
            features.extend((positions == position).astype(float) for position in range(len(known) + 1))
        return np.stack(features, axis=1).astype(np.float32), ["; ".join(note) for note in notes]
