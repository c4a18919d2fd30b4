#!/usr/bin/env python
"""Score new images with a trained run: one image, a folder, or a CSV list of paths.

Writes a CSV (default <run>/predictions.csv) with one row per file: the path, the malignant
score (for 7-class models also the seven class probabilities and the top class), the label at
the run's tuned threshold (threshold.json; 0.5 with a warning if there is none) and an error
message for files that cannot be read. Images stream in batches with a progress bar.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from src import cli
from src.inference import infer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="an image file, a folder of images or a CSV with a 'path' column")
    cli.add_run_arguments(parser)
    parser.add_argument("--output", help="CSV to write (default: <run>/predictions.csv)")
    parser.add_argument("--model", choices=["best", "final"], default="best", help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)

    run = cli.open_run(args)
    result = infer(run, Path(args.input), args.output, args.model, args.batch_size, args.force)
    logging.info("Scored %d file(s): %d malignant at threshold %.4f, %d error(s) -> %s",
                 result["images"], result["malignant"], result["threshold"], result["errors"],
                 result["output"])
    return 0


if __name__ == "__main__":
    cli.run(main)
