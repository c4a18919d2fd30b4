#!/usr/bin/env python
"""Split a dataset into train/val/test by lesion (by patient where it names patients),
stratified by diagnosis.

Reads HAM10000, ISIC 2019, ISIC 2020, PAD-UFES-20, class folders or an image list (detected, or
--dataset NAME). Writes split.csv (image_id, lesion_id, patient_id, dx, label, split, age, sex,
localization, image_path) and split_summary.json (the label space, counts per split and class,
positive ratio, training class weights, what was kept together, source, seed). Diagnoses with fewer lesions than splits stay in training, with a warning. The same
inputs and seed give a byte-identical split.csv; an existing, different split is only replaced
with --force. Nothing is written unless the whole split succeeds.
"""
from __future__ import annotations

import logging
from pathlib import Path

from skin_lesion import cli, layout
from skin_lesion.defaults import SPLIT_RATIOS, SPLIT_SEED
from skin_lesion.tasks import BINARY, KINDS


def build_parser():
    parser = cli.parser(__doc__)
    cli.add_dataset_arguments(parser, str(layout.HAM10000_DIR))
    parser.add_argument("--out-dir", default=str(layout.OutputsLayout().split_dir),
                        help="where split.csv and split_summary.json go (default: %(default)s)")
    parser.add_argument("--task", choices=KINDS, default=BINARY,
                        help="label column and class weights for this task (default: %(default)s)")
    parser.add_argument("--ratios", type=float, nargs=3, default=list(SPLIT_RATIOS),
                        metavar=("TRAIN", "VAL", "TEST"), help="split ratios (default: 0.70 0.15 0.15)")
    parser.add_argument("--seed", type=int, default=SPLIT_SEED, help="random seed (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing, different split")
    return parser


def main(args) -> int:
    from skin_lesion.data.dataset import GROUP_NAMES
    from skin_lesion.data.split import write_split

    dataset = cli.read_dataset(args)
    summary = write_split(dataset, Path(args.out_dir), args.task, args.ratios, args.seed, args.force)
    for name, part in summary["splits"].items():
        logging.info("%-5s %5d images, %5d lesions, %.1f%% malignant", name, part["images"],
                     part["lesions"], 100 * part["positive_ratio"])
    logging.info("Data: %s. Classes: %d of %s (%s), split by %s", dataset.provenance.name,
                 len(dataset.label_space.codes), dataset.label_space.name, ", ".join(dataset.label_space.codes),
                 GROUP_NAMES[dataset.group_by])
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
