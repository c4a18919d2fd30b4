#!/usr/bin/env python
"""Split a HAM10000 folder into train/val/test by lesion, stratified by diagnosis.

Writes split.csv (image_id, lesion_id, dx, label, split, image_path) and split_summary.json
(counts per split and class, positive ratio, training class weights, source, seed). The same
inputs and seed give a byte-identical split.csv; an existing, different split is only replaced
with --force.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from src import cli, layout
from src.data import load_dataset
from src.io_utils import refuse_overwrite, write_json_atomic, write_text_atomic
from src.labels import TASKS
from src.split import DEFAULT_RATIOS, DEFAULT_SEED, split_csv_text, split_dataset, split_summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(layout.HAM10000_DIR),
                        help="dataset folder, Kaggle or class-folder layout (default: %(default)s)")
    parser.add_argument("--out-dir", default=str(layout.SPLIT_DIR),
                        help="where split.csv and split_summary.json go (default: %(default)s)")
    parser.add_argument("--task", choices=list(TASKS), default="binary",
                        help="label column and class weights for this task (default: %(default)s)")
    parser.add_argument("--ratios", type=float, nargs=3, default=list(DEFAULT_RATIOS),
                        metavar=("TRAIN", "VAL", "TEST"), help="split ratios (default: 0.70 0.15 0.15)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing, different split")
    args = parser.parse_args(argv)

    dataset = load_dataset(Path(args.data_dir))
    table = split_dataset(dataset, args.task, args.ratios, args.seed)
    split_file, summary_file = layout.split_paths(Path(args.out_dir))
    text = split_csv_text(table)
    if split_file.is_file() and split_file.read_text(encoding="utf-8") == text:
        logging.info("%s is already this split; left as it is.", split_file)
    else:
        refuse_overwrite(split_file, args.force, "Split file")
        write_text_atomic(split_file, text)
    summary = split_summary(table, dataset, args.task, args.ratios, args.seed)
    summary["split_file"] = str(split_file.resolve())
    write_json_atomic(summary_file, summary)
    for name, part in summary["splits"].items():
        logging.info("%-5s %5d images, %5d lesions, %.1f%% malignant", name, part["images"],
                     part["lesions"], 100 * part["positive_ratio"])
    logging.info("Wrote %s and %s", split_file, summary_file)
    return 0


if __name__ == "__main__":
    cli.run(main)
