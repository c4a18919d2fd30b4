#!/usr/bin/env python
"""Score new images with a trained model: one image, a folder (with its subfolders), or a CSV
list of paths.

Writes a CSV (default <run>/predictions.csv) with one row per file: the path, the calibrated
malignant score (for multi-class models also each class probability and the top class), the
label at the tuned threshold (threshold.json; 0.5 with a warning if there is none) and an error
message for files that cannot be read (each named on the console in plain words). Exit status:
0 when every file was scored, 1 when some could not be, 2 when none could or nothing was done.
The model is a run's best model (--run-dir, default outputs/latest) or a copied .h5 file
(--model-file; threshold.json and calibration.json are used if they lie beside it). Models with
a metadata input take age, sex and localization from the CSV's columns or from --metadata FILE
(joined on image_id = the file name's stem).
"""
from __future__ import annotations

import logging
from pathlib import Path

from skin_lesion import cli
from skin_lesion.defaults import PREDICTION_BATCH
from skin_lesion.errors import MissingFileError
from skin_lesion.io_utils import refuse_overwrite
from skin_lesion.layout import ModelFileLayout


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("input", help="an image file, a folder of images or a CSV with a 'path' column")
    cli.add_run_arguments(parser)
    parser.add_argument("--model-file", metavar="H5",
                        help="score with this .h5 model file instead of a run's best model")
    parser.add_argument("--metadata", metavar="CSV",
                        help="HAM10000-style metadata (image_id, age, sex, localization) for models "
                             "that use it")
    parser.add_argument("--output", metavar="CSV",
                        help="CSV to write (default: <run>/predictions.csv, or predictions.csv "
                             "beside --model-file)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=PREDICTION_BATCH,
                        help="images decoded and scored at a time (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    return parser


def output_path(args) -> Path:
    """``--output``, else the run's predictions.csv or the one beside the model file."""
    if args.output:
        return Path(args.output)
    return ModelFileLayout(args.model_file).predictions if args.model_file else cli.open_run(args).predictions


def check(args) -> None:
    """Before TensorFlow starts: the input, the model and the output, so a slip costs no wait."""
    if not Path(args.input).exists():
        raise MissingFileError(f"Input {args.input} does not exist; give an image, a folder or a CSV of paths.")
    if args.model_file:
        ModelFileLayout(args.model_file).require()
    refuse_overwrite(output_path(args), args.force, "Predictions file", "--output CSV")


def main(args) -> int:
    from skin_lesion.serving.inference import exit_status, infer
    from skin_lesion.serving.predictor import load_predictor

    run = None if args.model_file else cli.open_run(args)
    predictor = load_predictor(run, args.model_file and Path(args.model_file))
    logging.info("Model %s", predictor.describe())
    result = infer(predictor, Path(args.input), output_path(args), args.batch_size,
                   args.metadata and Path(args.metadata))
    logging.info("Scored %d file(s): %d malignant at threshold %.4f, %d error(s) -> %s",
                 result["images"] - result["errors"], result["malignant"], result["threshold"],
                 result["errors"], result["output"])
    return exit_status(result)


if __name__ == "__main__":
    cli.run(build_parser, main, check=check)
