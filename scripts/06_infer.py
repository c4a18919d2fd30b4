#!/usr/bin/env python
"""Score new images with a trained model: one image, a folder (subfolders too) or a CSV of paths.

One image: its score and label on the console (a CSV only with --output). A folder or list: a
CSV (default <run>/predictions.csv), one row per file: the malignant score in full precision
(calibrated where the model has a calibration.json; the console writes > 0.999, never 1.000),
class probabilities for multi-class models, the label at the tuned threshold (threshold.json; 0.5
with a warning if none), the out-of-distribution flag with its feature distance and reason (an
image unlike the training images gets no verdict) and why a file could not be read. Flagged and
unreadable files are named on the console too.
Exit status: 0 every file scored, 1 some could not be, 2 none could or nothing was done.
--model-file: a copied .h5 (with threshold.json, calibration.json beside it), an 08_export.py
export (.keras, .tflite, .onnx, SavedModel folder; TFLite and ONNX score without TensorFlow) or
hf://OWNER/NAME[/FORMAT]; CSV in <outputs-dir>/model_files/<name>/. Metadata: --metadata.
"""
from __future__ import annotations

import logging
from pathlib import Path

from skin_lesion import cli
from skin_lesion.defaults import PREDICTION_BATCH
from skin_lesion.io_utils import refuse_overwrite
from skin_lesion.layout import ModelFileLayout


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("input", help="an image file, a folder of images or a CSV with a 'path' column")
    cli.add_run_arguments(parser)
    parser.add_argument("--model-file", metavar="MODEL", help="score with this model (.h5, .keras, .tflite, "
                        ".onnx, SavedModel folder or hf://OWNER/NAME[/FORMAT]) instead of a run's")
    parser.add_argument("--metadata", metavar="CSV",
                        help="image_id, age, sex, localization per image, for models that use them")
    parser.add_argument("--output", metavar="CSV",
                        help="CSV to write (default: none for one image, else the run's or the model "
                             "file's predictions.csv)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=PREDICTION_BATCH,
                        help="images decoded and scored at a time (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    return parser


def output_path(args) -> Path | None:
    """``--output``; else none for one image (the console shows its verdict), or the run's or
    the model file's predictions.csv."""
    if args.output or (Path(args.input).is_file() and Path(args.input).suffix.lower() != ".csv"):
        return args.output and Path(args.output)
    if args.model_file:
        return ModelFileLayout(args.model_file, args.outputs_dir).predictions
    return cli.open_run(args).predictions


def check(args) -> None:
    """Before TensorFlow starts: the input, the model and the output, so a slip costs no wait."""
    cli.require_inputs([args.input], "Input")
    cli.require_inputs([args.metadata] if args.metadata else [], "--metadata", cli.METADATA_CSV)
    if args.model_file:
        cli.require_model(args)
    else:
        cli.open_run(args)
    if output := output_path(args):
        refuse_overwrite(output, args.force, "Predictions file", "--output CSV")


def main(args) -> int:
    from skin_lesion.serving.inference import exit_status, infer
    from skin_lesion.serving.predictor import load_predictor

    run = None if args.model_file else cli.open_run(args)
    predictor = load_predictor(run, args.model_file and Path(args.model_file))
    logging.info("Model %s", predictor.describe())
    result = infer(predictor, Path(args.input), output_path(args), args.batch_size,
                   args.metadata and Path(args.metadata))
    return exit_status(result)


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=cli.needs_tensorflow, check=check)
