"""Lesion-level (or patient-level), diagnosis-stratified train/val/test split.

HAM10000 holds several images of many lesions; splitting by image would put near-copies of one
lesion into training and test and inflate every metric. Lesions are therefore assigned to splits
as a whole, stratified by diagnosis so that each split keeps the class mix of the dataset. Where
a dataset names patients (ISIC 2020, PAD-UFES-20), whole patients are assigned instead, each
stratified by its rarest diagnosis; the summary records which (``group_by``).

A diagnosis with fewer lesions than there are splits cannot reach every split: its lesions are
kept in training (a warning says so and the summary records it), so the model still learns it;
the task's labels themselves must reach every split, or nothing can be evaluated.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.utils.class_weight import compute_class_weight

from skin_lesion import layout
from skin_lesion.data.dataset import PATIENT_COLUMNS, Dataset, Provenance, lesions_with_several
from skin_lesion.data.files import list_some
from skin_lesion.data.records import dataset_of, label_space_of
from skin_lesion.defaults import SPLIT_RATIOS, SPLIT_SEED
from skin_lesion.errors import ConfigError, DatasetError, MissingFileError, OverwriteError
from skin_lesion.io_utils import refuse_overwrite, write_json_atomic, write_text_atomic
from skin_lesion.tasks import LabelSpace, Task

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_COLUMNS = ("image_id", "lesion_id", "patient_id", "dx", "label", "split", *PATIENT_COLUMNS, "image_path")


@dataclass
class Split:
    """The split table and what the split had to decide on its own."""

    table: pd.DataFrame
    train_only: list[str] = field(default_factory=list)  # diagnoses too rare for val and test


def check_ratios(ratios) -> dict[str, float]:
    """Validate train/val/test ratios (positive, summing to 1) and name them."""
    ratios = tuple(float(ratio) for ratio in ratios)
    if len(ratios) != 3 or any(ratio <= 0 for ratio in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise ConfigError(
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
            break
        bucket = bucket.where(~rare, bucket - 1)
    too_few = set(lesions.loc[counts < minimum, "dx"])  # even single-image groups are too few
    return keys.where(~lesions["dx"].isin(too_few), lesions["dx"])


def too_rare(lesions: pd.DataFrame, splits: int) -> list[str]:
    """Diagnoses with fewer lesions than ``splits``: they cannot reach every split."""
    counts = lesions["dx"].value_counts()
    return sorted(counts[counts < splits].index)


def carve(remaining: pd.DataFrame, share: float, name: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Take a stratified ``share`` of the lesions for split ``name``; the rest stays."""
    strata = remaining["stratum"].nunique()
    taken_count = int(np.floor(share * len(remaining)))
    if min(taken_count, len(remaining) - taken_count) < strata:
        raise DatasetError(
            f"A stratified {name} split of {len(remaining)} lesions with {strata} diagnosis "
            f"groups needs at least {strata} lesions on each side, but gets {taken_count}. Give val "
            "and test larger shares (for example --ratios 0.5 0.25 0.25) or add lesions."
        )
    return train_test_split(remaining, train_size=share, stratify=remaining["stratum"],
                            random_state=seed)


def assign_lesions(lesions: pd.DataFrame, fractions: dict[str, float], seed: int) -> Split:
    """Assign each group (``group``: a lesion or a patient, ``dx``, ``images``) to a split, stratified.

    Splits are carved one after another with scikit-learn's stratified ``train_test_split``;
    the last split takes what remains. Lesions of diagnoses too rare to reach every split stay
    in training.
    """
    rare = too_rare(lesions, len(fractions))
    if rare:
        counts = lesions["dx"].value_counts()
        log.warning(
            "%s: fewer lesions than the %d splits, so all of them stay in the training split; "
            "the %s split(s) will have none and their per-class figures will be missing. Add "
            "lesions of these diagnoses for a complete evaluation.",
            ", ".join(f"{dx} has {counts[dx]}" for dx in rare), len(fractions),
            "/".join(list(fractions)[1:]))
    names = list(fractions)
    assigned = pd.Series(index=lesions["group"], dtype=object)
    kept = lesions["dx"].isin(rare)
    assigned[lesions.loc[kept, "group"]] = names[0]
    remaining = lesions[~kept].sort_values("group", kind="stable")
    remaining = remaining.assign(stratum=stratum_keys(remaining, fractions))
    remaining_share = 1.0
    for name in names[:-1]:
        taken, remaining = carve(remaining, fractions[name] / remaining_share, name, seed)
        assigned[taken["group"]] = name
        remaining_share -= fractions[name]
    assigned[remaining["group"]] = names[-1]
    return Split(assigned, rare)


def check_labels(table: pd.DataFrame, task: Task, splits=SPLITS) -> None:
    """The task's labels must reach the splits: both for binary, every class in training.

    Checked before splitting on the whole table (``splits`` empty: enough lesions at all?) and
    after it on every split.
    """
    space = task.label_space
    if task.is_binary:
        malignant = space.is_malignant(table["dx"])
        for value, kind in ((1, "malignant"), (0, "benign")):
            lesions = table.loc[malignant == value, "lesion_id"].nunique()
            short = [name for name in splits if value not in set(malignant[(table["split"] == name).to_numpy()])]
            if lesions < len(SPLITS) or short:
                where = f"The {short[0]} split has" if short else "The data has"
                raise DatasetError(
                    f"{where} no {kind} image to spare: the data holds {lesions} {kind} lesion(s) "
                    f"({', '.join(space.malignant_codes) if value else 'other diagnoses'}), and a "
                    "benign-vs-malignant split needs at least one in each of train, val and test. "
                    f"Add {kind} images."
                )
        return
    absent = sorted(set(space.codes) - set(table.loc[table["split"].isin(("train", "")), "dx"]))
    if absent:
        raise DatasetError(
            f"The {task.num_outputs}-class task needs training images of every diagnosis; there are none of "
            f"{', '.join(absent)}. Add images of them, or use --task binary."
        )


def check_split_folders(table: pd.DataFrame) -> None:
    """No lesion in two of the split folders the class-folder layout gives."""
    shared = lesions_with_several(table, "split")
    if shared:
        raise DatasetError(
            f"Lesion(s) {list_some(shared)} have images in more than one split folder; "
            "move all images of a lesion into one of train/, val/, test/."
        )


def split_groups(table: pd.DataFrame, group_by: str) -> pd.DataFrame:
    """One row per group (``group_by``: lesion or patient) with its number of images and the
    diagnosis it is stratified by: a lesion's own, a patient's rarest (so the rare diagnoses
    spread over the splits as a lesion-level split spreads them)."""
    rarity = table["dx"].map(table["dx"].value_counts())
    ranked = table.assign(rarity=rarity).sort_values(["rarity", "dx"], kind="stable")
    groups = ranked.groupby(group_by, sort=True).agg(dx=("dx", "first"), images=("image_id", "size"))
    return groups.rename_axis("group").reset_index()


def split_dataset(dataset: Dataset, task: Task, ratios=SPLIT_RATIOS, seed: int = SPLIT_SEED) -> Split:
    """The split: one row per image with its split and its label for ``task``.

    Splits given by the class-folder layout are kept; the splits it lacks are carved out of its
    training images in proportion to ``ratios``.
    """
    fractions = check_ratios(ratios)
    table = dataset.table.sort_values("image_id", kind="stable").reset_index(drop=True)
    check_labels(table, task, splits=())
    given = set(table["split"]) - {""}
    missing = [name for name in SPLITS if name not in given]
    train_only: list[str] = []
    if missing:
        source_split = "train" if given else ""
        to_split = table["split"] == source_split
        carved = ["train", *[name for name in missing if name != "train"]]
        total = sum(fractions[name] for name in carved)
        groups = split_groups(table.loc[to_split], dataset.group_by)
        assigned = assign_lesions(groups, {name: fractions[name] / total for name in carved}, seed)
        table.loc[to_split, "split"] = table.loc[to_split, dataset.group_by].map(assigned.table)
        train_only = assigned.train_only
    table["label"] = task.labels(table["dx"])
    check_split_folders(table)
    check_labels(table, task)
    order = table["split"].map({name: rank for rank, name in enumerate(SPLITS)})
    table = table.assign(_order=order).sort_values(["_order", "image_id"], kind="stable")
    return Split(table.loc[:, list(SPLIT_COLUMNS)].reset_index(drop=True), train_only)


def class_weights(labels: np.ndarray, task: Task) -> dict[int, float]:
    """Balanced class weights, n_samples / (n_classes * count), from training labels."""
    classes = np.arange(len(task.classes))
    weights = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    return {int(label): float(weight) for label, weight in zip(classes, weights)}


def same_lesions(table: pd.DataFrame, other: pd.DataFrame) -> bool:
    """The same images in the same splits, whatever their labels say (another task's split)."""
    columns = [column for column in SPLIT_COLUMNS if column != "label"]
    return table[columns].astype(str).reset_index(drop=True).equals(other[columns].astype(str).reset_index(drop=True))


def split_csv_text(table: pd.DataFrame) -> str:
    """The split table as CSV text; identical tables give identical bytes."""
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def read_split(path: Path) -> pd.DataFrame:
    """Read a split table written by ``scripts/02_prepare_split.py``, with clear errors.

    Splits written before the patient columns (or patient ids) existed read with them empty.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"Split file {path} not found; create it with scripts/02_prepare_split.py."
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in SPLIT_COLUMNS
               if column not in table.columns and column not in (*PATIENT_COLUMNS, "patient_id")]
    if missing:
        raise DatasetError(f"Split file {path} lacks column(s) {', '.join(missing)}; recreate it "
                           "with scripts/02_prepare_split.py.")
    table = table.reindex(columns=list(SPLIT_COLUMNS), fill_value="")
    return table.assign(label=table["label"].astype(np.int64))


def split_label_space(split_file: Path) -> LabelSpace:
    """The label space of a split, from the summary beside it (HAM10000's for splits written
    before summaries carried one, or without a summary)."""
    return label_space_of(*layout.split_record(split_file))


def split_dataset_record(split_file: Path) -> Provenance:
    """What the split's data is, from the summary beside it (for splits written before summaries
    said so, the dataset their label space names)."""
    return dataset_of(*layout.split_record(split_file))


def split_grouping(split_file: Path) -> str:
    """What the split kept together, ``lesion_id`` or ``patient_id``: the unit that bootstrap
    intervals resample (lesions for splits written before it was recorded)."""
    return layout.split_record(split_file)[0].get("group_by", "lesion_id")


def split_summary(split: Split, dataset: Dataset, task: Task, ratios, seed: int) -> dict:
    """Counts per split and class, positive ratio, training class weights and provenance; the
    task with its label space and what the data is, which training reads from here
    (:func:`split_label_space`, :func:`split_dataset_record`)."""
    table = split.table
    names = task.classes
    summary: dict = {
        **task.as_record(),
        **({"dataset": dataset.provenance.as_dict()} if dataset.provenance else {}),
        "seed": seed,
        "ratios": check_ratios(ratios),
        "source_dir": str(dataset.source_dir),
        "layout": dataset.layout,
        "group_by": dataset.group_by,
        "images": int(len(table)),
        "lesions": int(table["lesion_id"].nunique()),
        "patients": int(table["patient_id"].replace("", np.nan).nunique()),
        "missing_images": dataset.missing_images,
        "unlisted_images": dataset.unlisted_images,
        "train_only_diagnoses": split.train_only,
        "splits": {},
    }
    for name in SPLITS:
        part = table[table["split"] == name]
        dx_counts = part["dx"].value_counts()
        label_counts = part["label"].value_counts()
        summary["splits"][name] = {
            "images": int(len(part)),
            "lesions": int(part["lesion_id"].nunique()),
            "dx_counts": {dx: int(dx_counts.get(dx, 0)) for dx in task.label_space.codes},
            "label_counts": {names[i]: int(label_counts.get(i, 0)) for i in range(len(names))},
            "positive_ratio": round(float(task.label_space.is_malignant(part["dx"]).mean()), 6),
        }
    train_labels = table.loc[table["split"] == "train", "label"].to_numpy()
    summary["class_weights"] = {
        names[label]: round(weight, 6) for label, weight in class_weights(train_labels, task).items()
    }
    return summary


def write_split(dataset: Dataset, out_dir: Path, kind: str, ratios=SPLIT_RATIOS,
                seed: int = SPLIT_SEED, force: bool = False) -> dict:
    """Split for the task ``kind`` over the dataset's label space, summarise, then write
    ``split.csv`` and ``split_summary.json`` into ``out_dir``.

    Everything is computed before anything is written. The same split already on disk is
    left as it is; a different one is only replaced with ``force``. Returns the summary.
    """
    task = Task(kind, dataset.label_space)
    split = split_dataset(dataset, task, ratios, seed)
    split_file, summary_file = layout.split_paths(Path(out_dir))
    summary = split_summary(split, dataset, task, ratios, seed)
    summary["split_file"] = str(split_file.resolve())
    text = split_csv_text(split.table)
    if split_file.is_file() and split_file.read_text(encoding="utf-8") == text:
        log.info("%s is already this split; left as it is.", split_file)
    else:
        if not force and split_file.is_file() and same_lesions(read_split(split_file), split.table):
            raise OverwriteError(
                f"Split file {split_file} already holds these lesions in these splits, labelled for "
                f"another task; 03_train.py --task {kind} trains on it as it is (labels come from dx). "
                "Pass --force to relabel it, or write elsewhere with --out-dir DIR.")
        refuse_overwrite(split_file, force, "Split file", "--out-dir DIR")
        write_text_atomic(split_file, text)
        log.info("Wrote %s", summary["split_file"])
    write_json_atomic(summary_file, summary)
    return summary
