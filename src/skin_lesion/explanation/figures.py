"""Explanation figures for a run: the most telling test images, or images a user chose.

For a binary model the test images are grouped by outcome at the tuned threshold — true
positives, false positives, false negatives, true negatives — and the most confident of each
group are explained (highest score for predicted malignant, lowest for predicted benign); for a
multi-class model, per diagnosis, the most confident correct and the most confident wrong
predictions. The choice is deterministic (ties broken by image id), so the same run always gives
the same figures. Each explained image gets a PNG of its own and a row in a CSV; each group a
grid (image | heatmap | colour bar) to put on a slide, and a group without members (no false
negatives, say) a figure and a console line that say so.
"""
from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from skin_lesion.data.images import decode_files
from skin_lesion.defaults import PREDICTION_BATCH
from skin_lesion.errors import DatasetError
from skin_lesion.explanation.gradcam import HEAT_COLOURS, explain, overlay
from skin_lesion.formatting import score_text
from skin_lesion.io_utils import refuse_overwrite, write_text_atomic
from skin_lesion.layout import RunLayout
from skin_lesion.plots import explanation_figure, message_figure, save_figure
from skin_lesion.serving.inference import Inputs, decided_class, join_metadata, list_inputs, predict_paths
from skin_lesion.serving.predictor import Predictor
from skin_lesion.serving.splits import run_split_images, score_split
from skin_lesion.tasks import BENIGN_MALIGNANT, Task

log = logging.getLogger(__name__)

#: Explained images are shown at this size (the heatmap is computed at the model's size).
FIGURE_IMAGE_SIZE = 256
#: Rows of one grid figure.
GRID_ROWS = 6
#: A binary model's groups, in the order shown: (truth, predicted) at the tuned threshold.
BINARY_GROUPS = {"true_positive": (1, 1), "false_positive": (0, 1), "false_negative": (1, 0),
                 "true_negative": (0, 0)}
#: A multi-class model's groups per diagnosis: its images predicted as it, and the others.
CLASS_OUTCOMES = ("correct", "missed")


def binary_cases(table: pd.DataFrame, threshold: float, per_group: int, task: Task) -> pd.DataFrame:
    """The most confident true/false positives and negatives at ``threshold`` (``table`` has a
    ``score`` column; the task's label space says which diagnoses are malignant)."""
    frame = table.assign(truth=task.label_space.is_malignant(table["dx"]),
                         predicted=(table["score"] >= threshold).astype(int))
    chosen = []
    for group, (truth, predicted) in BINARY_GROUPS.items():
        members = frame[(frame["truth"] == truth) & (frame["predicted"] == predicted)]
        confidence = members["score"] if predicted else -members["score"]
        ranked = members.assign(_key=-confidence).sort_values(["_key", "image_id"], kind="stable")
        chosen.append(ranked.head(per_group).assign(group=group, class_index=predicted))
    return pd.concat(chosen, ignore_index=True).drop(columns="_key")


def multiclass_cases(table: pd.DataFrame, probabilities: np.ndarray, predicted: np.ndarray,
                     per_group: int, task: Task) -> pd.DataFrame:
    """Per diagnosis, the most confident correct and the most confident wrong predictions
    (``predicted``: each image's top class; confidence: its probability)."""
    names = task.classes
    frame = table.assign(label=task.labels(table["dx"]), predicted=predicted,
                         confidence=probabilities[np.arange(len(predicted)), predicted])
    chosen = []
    for index, name in enumerate(names):
        of_class = frame[frame["label"] == index]
        correct = of_class["predicted"] == index
        for group, members in zip(class_groups(name), (of_class[correct], of_class[~correct])):
            ranked = members.assign(_key=-members["confidence"]).sort_values(["_key", "image_id"], kind="stable")
            top = ranked.head(per_group)
            chosen.append(top.assign(group=group, class_index=top["predicted"]))
    return pd.concat(chosen, ignore_index=True).drop(columns="_key")


def class_groups(name: str) -> tuple[str, ...]:
    """The groups of one diagnosis of a multi-class model (``mel_correct``, ``mel_missed``)."""
    return tuple(f"{name}_{outcome}" for outcome in CLASS_OUTCOMES)


def group_names(task: Task) -> list[str]:
    """Every group the test cases are drawn from, with members or not, in the order shown."""
    if task.is_binary:
        return list(BINARY_GROUPS)
    return [group for name in task.classes for group in class_groups(name)]


def no_members(group: str, predictor: Predictor) -> str:
    """What stands for a group without test images (no false negatives is a result too)."""
    if predictor.task.is_binary:
        return f"No {group.replace('_', ' ')}s in the test split at threshold {predictor.threshold:.3f}."
    name, outcome = group.rsplit("_", 1)
    predicted = name if outcome == "correct" else "another class"
    return f"No {name} image of the test split is predicted as {predicted}."


def write_empty_groups(predictor: Predictor, cases: pd.DataFrame, out_dir: Path, method: str) -> None:
    """A figure where the grid of a group without members would be, and a console line: a
    missing file would leave the reader to guess."""
    present = set(cases["group"])
    for group in [group for group in group_names(predictor.task) if group not in present]:
        text = no_members(group, predictor)
        save_figure(message_figure(text, f"{method}: {group.replace('_', ' ')} ({predictor.model_file.name})"),
                    out_dir / f"{method}_{group}.png")
        log.info("%s Nothing to explain in that group.", text)


def decoded(paths: list[str], size: int) -> np.ndarray:
    """Images at ``size`` through the project's decoder, in order (undecodable ones raise)."""
    batches = list(decode_files(paths, (size, size)))
    found = np.concatenate([indices for indices, _ in batches]) if batches else np.array([], int)
    missing = sorted(set(range(len(paths))) - set(found.tolist()))
    if missing:
        raise ValueError(f"Cannot decode {paths[missing[0]]} for the explanation.")
    return np.concatenate([images for _, images in batches])[np.argsort(found)]


def caption(row: pd.Series, predictor: Predictor) -> str:
    """What a reader needs beside the image: the truth (when known), the score and the decision."""
    name = Path(row["image_path"]).stem
    truth = f"true {row['dx']}" if row.get("dx") else "true label unknown"
    if row.get("ood_reason"):
        return (f"{name}  ({truth})\nOUT OF DISTRIBUTION, no verdict (score {score_text(row['score'])}):\n"
                + textwrap.fill(row["ood_reason"], 70))
    decision = BENIGN_MALIGNANT[int(row["score"] >= predictor.threshold)]
    text = (f"{name}  ({truth})\nmalignant score {score_text(row['score'])} "
            f"{'≥' if decision == 'malignant' else '<'} threshold {predictor.threshold:.3f} → {decision}")
    if not predictor.task.is_binary:
        text += f", top class {predictor.class_names[int(row['class_index'])]}"
    return text


def write_explanations(predictor: Predictor, cases: pd.DataFrame, out_dir: Path, method: str,
                       stem: str, metadata: np.ndarray | None = None) -> pd.DataFrame:
    """Heatmaps for ``cases`` (image_path, group, score, class_index ...): one PNG per image,
    one grid per group (in pages of GRID_ROWS), and ``<stem>.csv`` listing them."""
    heatmaps = explain(predictor.explainable_model(), decoded(cases["image_path"].tolist(), predictor.img_size), method,
                       metadata, cases["class_index"].to_numpy())
    shown = decoded(cases["image_path"].tolist(), FIGURE_IMAGE_SIZE)
    rows = [(image, overlay(image, heat), caption(row, predictor))
            for image, heat, (_, row) in zip(shown, heatmaps, cases.iterrows())]
    files = []
    for (_, row), figure_row, name in zip(cases.iterrows(), rows, unique_stems(cases["image_path"])):
        path = out_dir / "images" / f"{name}_{row['group']}_{method}.png"
        save_figure(explanation_figure([figure_row], f"{method}: {row['group'].replace('_', ' ')}", HEAT_COLOURS),
                    path)
        files.append(str(path.relative_to(out_dir)))
    for group, members in cases.groupby("group", sort=False):
        positions = members.index.to_numpy()
        for page in range(0, len(positions), GRID_ROWS):
            suffix = f"_{page // GRID_ROWS + 1}" if len(positions) > GRID_ROWS else ""
            save_figure(explanation_figure([rows[i] for i in positions[page:page + GRID_ROWS]],
                                           f"{method}: {group.replace('_', ' ')} ({predictor.model_file.name})",
                                           HEAT_COLOURS),
                        out_dir / f"{method}_{group}{suffix}.png")
    listing = cases.assign(file=files, threshold=predictor.threshold, method=method)
    write_text_atomic(out_dir / f"{stem}.csv", listing.to_csv(index=False))
    log.info("Explained %d image(s) with %s -> %s", len(cases), method, out_dir)
    return listing


def unique_stems(paths: pd.Series) -> list[str]:
    """Each path's file name without extension, numbered where a name recurs (``a/x.jpg``,
    ``b/x.jpg`` -> ``x``, ``x_2``), so images from different folders never share a PNG."""
    used: set[str] = set()
    names = []
    for path in paths:
        stem = name = Path(path).stem
        number = 1
        while name in used:
            number += 1
            name = f"{stem}_{number}"
        used.add(name)
        names.append(name)
    return names


def explain_test_cases(run: RunLayout, predictor: Predictor, method: str = "gradcam",
                       per_group: int = 4, force: bool = False) -> pd.DataFrame:
    """Explain the most telling test images of a run into ``RUN/explain/``."""
    stem = f"{method}_test_cases"
    refuse_overwrite(run.explain_dir / f"{stem}.csv", force, "Explanations")
    images = run_split_images(run, "test", predictor.img_size)
    scored = score_split(predictor, images, PREDICTION_BATCH)
    probabilities = scored.probabilities
    table = images.table.assign(score=predictor.scores(probabilities), ood_reason=scored.ood_reasons)
    if predictor.task.is_binary:
        cases = binary_cases(table, predictor.threshold, per_group, predictor.task)
    else:
        cases = multiclass_cases(table, probabilities, predictor.top_classes(probabilities), per_group,
                                 predictor.task)
    metadata, _ = predictor.encode_metadata(cases)
    write_empty_groups(predictor, cases, run.explain_dir, method)
    return write_explanations(predictor, cases, run.explain_dir, method, stem, metadata)


def explain_images(predictor: Predictor, sources: list[Path], out_dir: Path, method: str = "gradcam",
                   metadata_file: Path | None = None, force: bool = False) -> pd.DataFrame:
    """Explain chosen images (files, folders or CSV lists, as 06_infer.py reads them)."""
    stem = f"{method}_chosen"
    refuse_overwrite(Path(out_dir) / f"{stem}.csv", force, "Explanations", "--out-dir DIR")
    inputs = [list_inputs(Path(source)) for source in sources]
    paths = [path for part in inputs for path in part.paths]
    table = pd.concat([part.table for part in inputs], ignore_index=True)
    metadata = join_metadata(Inputs(paths, table), metadata_file) if metadata_file else table
    rows = pd.DataFrame(list(predict_paths(predictor, paths, metadata, progress=False)))
    scored = rows["error"] == ""
    for row in rows[~scored].itertuples():
        log.warning("Not explained, cannot be read: %s (%s)", row.path, row.error)
    if not scored.any():
        raise DatasetError("None of the given images could be read; nothing to explain.")
    rows = rows[scored].reset_index(drop=True)
    predicted = [decided_class(predictor, row) for row in rows.to_dict("records")]
    known = metadata[scored.to_numpy()].reset_index(drop=True)
    cases = pd.DataFrame({"image_path": rows["path"], "group": "chosen", "score": rows["malignant_score"],
                          "dx": known["dx"] if "dx" in known else "", "class_index": predicted,
                          "ood_reason": rows["ood_reason"] if "ood_reason" in rows else ""})
    for case in cases[cases["ood_reason"] != ""].itertuples():
        log.warning("%s is out of distribution (%s); its explanation shows what a model trained on "
                    "lesions makes of it, not a finding.", Path(case.image_path).name, case.ood_reason)
    encoded, _ = predictor.encode_metadata(known)
    return write_explanations(predictor, cases, Path(out_dir), method, stem, encoded)
