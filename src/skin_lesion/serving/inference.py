"""Predictions for new images: one file, a folder (searched recursively), or a CSV list.

Files stream through the same decoder as training and evaluation (``skin_lesion.data.images``) in
batches, so a folder of 100,000 images is never loaded at once and a file gets the same score
here as in ``05_evaluate.py``. A file that cannot be read or decoded gets a row with its error
and the rest of the batch goes on. For a model with a metadata input, age, sex and site come
from the input CSV's columns or from a HAM10000-style metadata file joined on the image id
(the file name without its extension); an image without them is scored with the 'unknown'
encoding and a note in its row.
"""
from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, TextIO

import pandas as pd
from tqdm import tqdm

from skin_lesion.data.dataset import PATIENT_COLUMNS, detect_separator
from skin_lesion.data.files import IMAGE_EXTENSIONS, scan_folder
from skin_lesion.defaults import PREDICTION_BATCH
from skin_lesion.errors import DatasetError, MissingFileError
from skin_lesion.formatting import score_text
from skin_lesion.io_utils import atomic_path
from skin_lesion.models.ood import OOD_COLUMNS
from skin_lesion.serving.predictor import Assessment, Predictor
from skin_lesion.tasks import BENIGN_MALIGNANT

log = logging.getLogger(__name__)

PATH_COLUMNS = ("path", "image_path", "filepath", "file")
#: Files not scored that are named on the console; the rest are counted (all are in the CSV).
FAILURES_SHOWN = 10


@dataclass
class Inputs:
    """The files to score, in order, and a table of their metadata columns (one row each)."""

    paths: list[str]
    table: pd.DataFrame


def read_csv_list(source: Path) -> Inputs:
    """Paths from a ``path`` (or ``image_path``...) column, or the first column; relative paths
    are taken relative to the CSV's folder. Other columns (age, sex, localization) are kept."""
    text = source.read_text(encoding="utf-8", errors="replace")
    table = pd.read_csv(source, dtype=str, keep_default_na=False, sep=detect_separator(text))
    if table.empty:
        raise DatasetError(f"{source} lists no paths.")
    column = next((c for c in PATH_COLUMNS if c in table.columns), table.columns[0])
    paths = [str(p if Path(p).is_absolute() else (source.parent / p)) for p in table[column]]
    return Inputs(paths, table.reset_index(drop=True))


def list_inputs(source: Path) -> Inputs:
    """The images named by ``source``: an image file, a folder or a CSV list of paths."""
    source = Path(source)
    if source.is_dir():
        scan = scan_folder(source)
        if scan.skipped:
            log.warning("In %s, %s", source, scan.skipped_summary())
        if not scan.images:
            raise DatasetError(f"{source} holds no image files ({', '.join(IMAGE_EXTENSIONS)}), "
                               "in any of its subfolders either.")
        log.info("Found %d image(s) under %s", len(scan.images), source)
        paths = [str(path) for path in scan.images]
        return Inputs(paths, pd.DataFrame(index=range(len(paths))))
    if source.suffix.lower() == ".csv":
        return read_csv_list(source)
    if source.is_file():
        return Inputs([str(source)], pd.DataFrame(index=range(1)))
    raise MissingFileError(f"Input {source} does not exist; give an image, a folder or a CSV of paths.")


def join_metadata(inputs: Inputs, metadata_file: Path) -> pd.DataFrame:
    """Each input's age, sex and localization (and diagnosis, where the file has one: explanations
    show it) from a HAM10000-style file, by image id."""
    text = Path(metadata_file).read_text(encoding="utf-8", errors="replace")
    metadata = pd.read_csv(metadata_file, dtype=str, keep_default_na=False, sep=detect_separator(text))
    if "image_id" not in metadata.columns:
        raise DatasetError(f"--metadata {metadata_file} lacks the image_id column; it needs image_id "
                           f"and any of {', '.join(PATIENT_COLUMNS)}.")
    metadata = metadata.drop_duplicates("image_id").set_index("image_id")
    stems = [Path(path).stem for path in inputs.paths]
    joined = metadata.reindex(stems)[[c for c in (*PATIENT_COLUMNS, "dx") if c in metadata.columns]]
    unmatched = int(joined.isna().all(axis=1).sum())
    if unmatched:
        log.warning("%d of %d image(s) have no row in %s; they are scored with unknown metadata.",
                    unmatched, len(stems), metadata_file)
    return joined.fillna("").reset_index(drop=True)


def image_decoder(predictor: Predictor):
    """The decoding module for ``predictor``: OpenCV's for models that score without TensorFlow
    (TFLite, ONNX: importing TensorFlow would take far longer than scoring), else TensorFlow's,
    as in training."""
    if predictor.without_tensorflow:
        from skin_lesion.data import opencv_images as decoder
    else:
        from skin_lesion.data import images as decoder
    return decoder


def predict_paths(predictor: Predictor, paths: list[str], metadata: pd.DataFrame | None = None,
                  batch_size: int = PREDICTION_BATCH, progress: bool = True,
                  contents: list[bytes] | None = None) -> Iterator[dict]:
    """One result row per path, in input order; undecodable files get an ``error`` row.
    ``contents``: the files' bytes, already in memory (the app's uploads, never written to
    disk); ``paths`` then only name them."""
    size = (predictor.img_size, predictor.img_size)
    decoder = image_decoder(predictor)
    encoded, notes = predictor.encode_metadata(metadata if metadata is not None
                                               else pd.DataFrame(index=range(len(paths))))
    next_index = 0
    bar = tqdm(total=len(paths), unit="img", desc="Predicting", leave=False,
               disable=None if progress else True)  # None: shown on terminals only

    def error_rows(stop: int) -> Iterator[dict]:
        nonlocal next_index
        for index in range(next_index, stop):
            error = decoder.decoding_error(paths[index], size, contents and contents[index])
            yield {"path": paths[index], "error": error or "unreadable"}
            bar.update(1)
        next_index = max(next_index, stop)

    for indices, images, sizes in decoder.decode_files(paths, size, batch_size, contents, original_sizes=True):
        assessment = predictor.assess(images, None if encoded is None else encoded[indices], [tuple(s) for s in sizes])
        probabilities = assessment.probabilities
        for position, (index, probability, score) in enumerate(zip(indices, probabilities,
                                                                   predictor.scores(probabilities))):
            yield from error_rows(int(index))
            yield {**result_row(predictor, paths[index], probability, float(score), notes[index]),
                   **ood_columns(predictor, assessment, position)}
            next_index = int(index) + 1
            bar.update(1)
    yield from error_rows(len(paths))
    bar.close()


def result_row(predictor: Predictor, path: str, probability, score: float, note: str) -> dict:
    """The CSV row of a scored image."""
    row = {"path": path, "error": ""}
    if not predictor.task.is_binary:
        row.update({f"prob_{name}": float(p) for name, p in zip(predictor.class_names, probability)})
        row["top_class"] = predictor.class_names[int(predictor.top_classes(probability[None])[0])]
    row["malignant_score"] = score
    row["label"] = BENIGN_MALIGNANT[int(score >= predictor.threshold)]
    if predictor.uses_metadata:
        row["metadata_note"] = note
    return row


def ood_columns(predictor: Predictor, assessment: Assessment, position: int) -> dict:
    """An image's out-of-distribution flag, feature distance and reason (none without the flag)."""
    if predictor.ood is None:
        return {}
    reason = assessment.ood_reasons[position]
    return {"out_of_distribution": bool(reason), "ood_distance": float(assessment.distances[position]),
            "ood_reason": reason}


def verdict(row: dict, predictor: Predictor) -> str:
    """One line for a scored row: ``lesion.jpg: malignant score 0.812 -> malignant (threshold
    0.724)``, with the top class of a multi-class model, or why the file could not be scored."""
    name = Path(row["path"]).name
    if row["error"]:
        return f"{name}: not scored: {row['error']}"
    if row.get("out_of_distribution"):
        return (f"{name}: out of distribution, no verdict: {row['ood_reason']} (its malignant score, "
                f"{score_text(row['malignant_score'])}, says nothing about such an image)")
    top = "" if predictor.task.is_binary else f", top class {row['top_class']}"
    return (f"{name}: malignant score {score_text(row['malignant_score'])} -> {row['label']} "
            f"(threshold {predictor.threshold:.4f}){top}")


def decided_class(predictor: Predictor, row: dict) -> int:
    """The class a scored row decided, as explanations index it: its top diagnosis for
    multi-class models, 1 (malignant) or 0 (benign) by its label for binary ones."""
    if predictor.task.is_binary:
        return BENIGN_MALIGNANT.index(row["label"])
    return predictor.class_names.index(row["top_class"])


def prediction_columns(predictor: Predictor) -> list[str]:
    columns = ["path"]
    if not predictor.task.is_binary:
        columns += [f"prob_{name}" for name in predictor.class_names] + ["top_class"]
    columns += ["malignant_score", "label"]
    columns += list(OOD_COLUMNS) if predictor.ood else []
    return columns + (["metadata_note"] if predictor.uses_metadata else []) + ["error"]


def tally(rows: Iterator[dict]) -> dict[str, int]:
    """How many rows, errors, labelled malignant and out of distribution."""
    counts = {"images": 0, "errors": 0, "malignant": 0, "out_of_distribution": 0}
    for row in rows:
        counts["images"] += 1
        counts["errors"] += bool(row["error"])
        counts["malignant"] += row.get("label") == "malignant"
        counts["out_of_distribution"] += bool(row.get("out_of_distribution"))
    return counts


def write_rows(rows: Iterator[dict], handle: TextIO, columns: list[str]) -> dict[str, int]:
    """Stream rows as CSV into an open text ``handle``; returns their tally."""
    writer = csv.DictWriter(handle, fieldnames=columns)
    writer.writeheader()

    def written() -> Iterator[dict]:
        for row in rows:
            writer.writerow(row)
            yield row

    return tally(written())


def write_predictions(rows: Iterator[dict], path: Path, columns: list[str]) -> dict[str, int]:
    """Stream rows into a CSV (temporary name, renamed at the end); returns their tally."""
    with atomic_path(path) as partial, open(partial, "w", newline="", encoding="utf-8") as handle:
        return write_rows(rows, handle, columns)


def predictions_csv(rows: list[dict], columns: list[str]) -> bytes:
    """The bytes ``write_predictions`` would write, made in memory (the app's download)."""
    handle = io.StringIO(newline="")
    write_rows(rows, handle, columns)
    return handle.getvalue().encode("utf-8")


def infer(predictor: Predictor, source: Path, output: Path | None, batch_size: int = PREDICTION_BATCH,
          metadata_file: Path | None = None) -> dict:
    """Score the images named by ``source`` into the CSV ``output`` (None: no CSV, for one image
    whose verdict the console shows); returns counts and the threshold used."""
    inputs = list_inputs(Path(source))
    metadata = join_metadata(inputs, metadata_file) if metadata_file else inputs.table
    if predictor.uses_metadata and not metadata_file and not set(PATIENT_COLUMNS) & set(metadata.columns):
        log.warning("The model uses age, sex and site, but none were given (CSV columns %s or "
                    "--metadata FILE): every image is scored with unknown metadata.",
                    ", ".join(PATIENT_COLUMNS))
    log.info("Scoring %d file(s) at %dx%d, the model's input size (decoded as in training: "
             "DCT-scaled JPEG decode, area resize%s)", len(inputs.paths), predictor.img_size,
             predictor.img_size, ", with OpenCV" if predictor.without_tensorflow else "")
    failures: list[dict] = []
    unusual: list[dict] = []
    rows = noting_problems(predict_paths(predictor, inputs.paths, metadata, batch_size), failures, unusual)
    if len(inputs.paths) == 1:  # one image: its verdict on the console too
        rows = list(rows)
        if not failures and not unusual:
            log.info("%s", verdict(rows[0], predictor))
    counts = write_predictions(rows, Path(output), prediction_columns(predictor)) if output else tally(rows)
    report_rows(unusual, predictor, output, "out of distribution", "ood_reason")
    report_rows(failures, predictor, output, "not scored", "error")
    if output:
        log.info("Scored %d file(s): %d malignant at threshold %.4f, %d out of distribution, %d error(s) -> %s",
                 counts["images"] - counts["errors"], counts["malignant"], predictor.threshold,
                 counts["out_of_distribution"], counts["errors"], output)
    return {**counts, "threshold": predictor.threshold, "output": output and str(output)}


def exit_status(result: dict) -> int:
    """The exit status of scoring: 0 every file scored, 1 some could not be, 2 none could (as for
    any other error a user can fix)."""
    errors = result["errors"]
    return 0 if not errors else 2 if errors == result["images"] else 1


def noting_problems(rows: Iterator[dict], failures: list[dict], unusual: list[dict]) -> Iterator[dict]:
    """The rows, passed on as they come; the ones with an error are also kept in ``failures``,
    the ones out of distribution in ``unusual``."""
    for row in rows:
        if row["error"]:
            failures.append(row)
        elif row.get("out_of_distribution"):
            unusual.append(row)
        yield row


def report_rows(rows: list[dict], predictor: Predictor, output: Path | None, what: str, column: str) -> None:
    """One console line per file, up to FAILURES_SHOWN, then a count."""
    for row in rows[:FAILURES_SHOWN]:
        log.warning("%s", verdict(row, predictor))
    if len(rows) > FAILURES_SHOWN:
        log.warning("... and %d more file(s) %s; the %s column of %s says why.",
                    len(rows) - FAILURES_SHOWN, what, column, output)
