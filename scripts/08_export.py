#!/usr/bin/env python
"""Export a run's model for other projects: .keras, SavedModel, TFLite, ONNX.

Each format goes into its own folder, <run>/export/<format>/, with a description.json beside the
model: what the .h5 says about itself (task, classes, input size, decoding, metadata encoding,
dataset), the calibration, the tuned threshold and the out-of-distribution detector, so a copied
folder scores alone (06_infer.py --model-file <folder>/model.tflite). Every export is checked on
the run's test images: float formats must score as the .h5 does within 1e-4; the quantised ones
(tflite-float16, tflite-int8) record their agreement and test ROC-AUC change in the description.
--push-to-hub OWNER/NAME uploads the chosen formats and the model card (as the repository's
README, with the Hub's metadata header) to the Hugging Face Hub (log in first: hf auth login).
Formats: keras (Keras 3 .keras), savedmodel (TensorFlow Serving; uint8 images in), tflite
(float32), tflite-float16, tflite-int8 (full-integer, calibrated on 200 training images), onnx.
"""
from __future__ import annotations

import logging

from skin_lesion import cli
from skin_lesion.export.catalogue import ALL, FORMATS


def build_parser():
    parser = cli.parser(__doc__)
    cli.add_run_arguments(parser)
    parser.add_argument("--format", action="append", required=True, choices=[*FORMATS, ALL],
                        metavar="FORMAT", help=f"repeatable: {', '.join(FORMATS)} or {ALL}")
    parser.add_argument("--push-to-hub", metavar="OWNER/NAME",
                        help="upload the chosen formats and the model card to this Hugging Face Hub repository")
    parser.add_argument("--force", action="store_true", help="replace existing exports of these formats")
    return parser


def main(args) -> int:
    from skin_lesion.export.exporter import export_run
    from skin_lesion.export.hub import push

    run = cli.open_run(args)
    results = export_run(run, args.format, args.force)
    for name, record in results.items():
        logging.info("%-15s %7.1f MB  max score difference %.2g  labels agree %.1f %%  test ROC-AUC %+.4f",
                     name, record["size_bytes"] / 1e6, record["max_score_difference"],
                     100 * record["label_agreement"], record["test_roc_auc_change"])
    if args.push_to_hub:
        logging.info("Published: %s", push(run.root, run.export_dir, list(results), args.push_to_hub))
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, check=cli.open_run)
