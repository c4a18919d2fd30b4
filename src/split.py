"""Lesion-level, diagnosis-stratified train/val/test split.

HAM10000 holds several images of many lesions; splitting by image would put near-copies of one
lesion into training and test and inflate every metric. Lesions are therefore assigned to splits
as a whole, stratified by diagnosis so that each split keeps the class mix of the dataset.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight

from src.data import Dataset, DatasetError, lesions_with_several, list_some
from src.labels import DIAGNOSES, class_names, is_malignant, labels_of

SPLITS: tuple[str, ...] = ("train", "val", "test")
DEFAULT_RATIOS: tuple[float, float, float] = (0.70, 0.15, 0.15)
DEFAULT_SEED = 42
SPLIT_COLUMNS = ("image_id", "lesion_id", "dx", "label", "split", "image_path")


def check_ratios(ratios) -> dict[str, float]:
    """Validate train/val/test ratios (positive, summing to 1) and name them."""
    ratios = tuple(float(ratio) for ratio in ratios)
    if len(ratios) != 3 or any(ratio <= 0 for ratio in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(
            f"--ratios must be three positive numbers for train, val and test that sum to 1; "
            f"got {', '.join(map(str, ratios))}."
        )
    return dict(zip(SPLITS, ratios))


def stratum_keys(lesions: pd.DataFrame, fractions: dict[str, float]) -> pd.Series:
    """Stratify by diagnosis and by images per lesion (1, 2, 3+).

    Lesions with several images weigh more in image counts; stratifying on the count as well
    keeps each split's image-level class shares close to the dataset's (within 0.5 percentage
    points on HAM10000, against up to 2 for diagnosis alone). Strata too small to be split are
    merged into the next smaller image count, down to the diagnosis alone.
    """
    minimum = int(np.ceil(len(fractions) / min(fractions.values())))
    bucket = lesions["images"].clip(upper=3)
    while True:
        keys = lesions["dx"] + "/" + bucket.astype(str)
        counts = keys.map(keys.value_counts())
        rare = (counts < minimum) & (bucket > 1)
        if not rare.any():
            return keys
        bucket = bucket.where(~rare, bucket - 1)


def assign_lesions(lesions: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """Assign each lesion (``lesion_id``, ``dx``, ``images``) to a split, stratified.

    Splits are carved one after another with scikit-learn's stratified ``train_test_split``;
    the last split takes what remains.
    """
    lesion_counts = lesions["dx"].value_counts()
    too_small = lesion_counts[lesion_counts < len(fractions)]
    if len(too_small):
        raise DatasetError(
            "A stratified split needs at least one lesion of each diagnosis per split; "
            + ", ".join(f"{dx} has {count}" for dx, count in too_small.items())
            + ". Add data for these classes or change the ratios."
        )
    remaining = lesions.sort_values("lesion_id", kind="stable")
    remaining = remaining.assign(stratum=stratum_keys(remaining, fractions))
    assigned = pd.Series(index=remaining["lesion_id"], dtype=object)
    remaining_share = 1.0
    names = list(fractions)
    for name in names[:-1]:
        share = fractions[name] / remaining_share
        try:
            taken, remaining = train_test_split(
                remaining, train_size=share, stratify=remaining["stratum"], random_state=seed
            )
        except ValueError as error:
            raise DatasetError(
                f"Cannot carve a stratified {name} split from {len(remaining)} lesions: {error}. "
                "The dataset is too small for these ratios."
            ) from error
        assigned[taken["lesion_id"]] = name
        remaining_share -= fractions[name]
    assigned[remaining["lesion_id"]] = names[-1]
    return assigned


def split_dataset(
    dataset: Dataset, task: str, ratios=DEFAULT_RATIOS, seed: int = DEFAULT_SEED
) -> pd.DataFrame:
    """Return the split table: one row per image with its split and its label for ``task``.

    Splits given by the class-folder layout are kept; the splits it lacks are carved out of its
    training images in proportion to ``ratios``.
    """
    fractions = check_ratios(ratios)
    table = dataset.table.sort_values("image_id", kind="stable").reset_index(drop=True)
    given = set(table["split"]) - {""}
    missing = [name for name in SPLITS if name not in given]
    if missing:
        source_split = "train" if given else ""
        to_split = table["split"] == source_split
        carve = ["train", *[name for name in missing if name != "train"]]
        total = sum(fractions[name] for name in carve)
        lesions = (
            table.loc[to_split].groupby("lesion_id", sort=True)
            .agg(dx=("dx", "first"), images=("image_id", "size")).reset_index()
        )
        assigned = assign_lesions(lesions, {name: fractions[name] / total for name in carve}, seed)
        table.loc[to_split, "split"] = table.loc[to_split, "lesion_id"].map(assigned)
    table["label"] = labels_of(table["dx"], task)
    check_split(table)
    order = table["split"].map({name: rank for rank, name in enumerate(SPLITS)})
    table = table.assign(_order=order).sort_values(["_order", "image_id"], kind="stable")
    return table.loc[:, list(SPLIT_COLUMNS)].reset_index(drop=True)


def check_split(table: pd.DataFrame) -> None:
    """No lesion in two splits; every diagnosis present in every split."""
    shared = lesions_with_several(table, "split")
    if shared:
        raise DatasetError(
            f"Lesion(s) {list_some(shared)} have images in more than one split folder; "
            "move all images of a lesion into one of train/, val/, test/."
        )
    for name in SPLITS:
        absent = sorted(set(table["dx"]) - set(table.loc[table["split"] == name, "dx"]))
        if absent:
            raise DatasetError(
                f"The {name} split has no image of {', '.join(absent)}; every class must appear in "
                "every split. Add images of these classes or change the ratios."
            )


def class_weights(labels: np.ndarray, task: str) -> dict[int, float]:
    """Balanced class weights, n_samples / (n_classes * count), from training labels."""
    classes = np.arange(len(class_names(task)))
    weights = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    return {int(label): float(weight) for label, weight in zip(classes, weights)}


def split_csv_text(table: pd.DataFrame) -> str:
    """The split table as CSV text; identical tables give identical bytes."""
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def read_split(path: Path) -> pd.DataFrame:
    """Read a split table written by ``scripts/02_prepare_split.py``, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Split file {path} not found; create it with scripts/02_prepare_split.py."
        )
    table = pd.read_csv(path, dtype={"image_id": str, "lesion_id": str, "dx": str, "split": str,
                                     "image_path": str, "label": np.int64})
    missing = [column for column in SPLIT_COLUMNS if column not in table.columns]
    if missing:
        raise DatasetError(f"Split file {path} lacks column(s) {', '.join(missing)}; recreate it "
                           "with scripts/02_prepare_split.py.")
    return table


def split_summary(table: pd.DataFrame, dataset: Dataset, task: str, ratios, seed: int) -> dict:
    """Counts per split and class, positive ratio, training class weights and provenance."""
    names = class_names(task)
    summary: dict = {
        "task": task,
        "seed": seed,
        "ratios": check_ratios(ratios),
        "source_dir": str(dataset.source_dir),
        "layout": dataset.layout,
        "images": int(len(table)),
        "lesions": int(table["lesion_id"].nunique()),
        "missing_images": dataset.missing_images,
        "unlisted_images": dataset.unlisted_images,
        "splits": {},
    }
    for name in SPLITS:
        part = table[table["split"] == name]
        dx_counts = part["dx"].value_counts()
        label_counts = part["label"].value_counts()
        summary["splits"][name] = {
            "images": int(len(part)),
            "lesions": int(part["lesion_id"].nunique()),
            "dx_counts": {dx: int(dx_counts.get(dx, 0)) for dx in DIAGNOSES},
            "label_counts": {names[i]: int(label_counts.get(i, 0)) for i in range(len(names))},
            "positive_ratio": round(float(is_malignant(part["dx"]).mean()), 6),
        }
    train_labels = table.loc[table["split"] == "train", "label"].to_numpy()
    summary["class_weights"] = {
        names[label]: round(weight, 6) for label, weight in class_weights(train_labels, task).items()
    }
    return summary
