#!/usr/bin/env python
"""Explore a HAM10000 folder: a Markdown report with figures of what the data holds.

Writes into --out-dir: report.md and the PNG figures it embeds: images and lesions per
diagnosis (class_counts.png), how each diagnosis was confirmed (a table, when the data says:
HAM10000's dx_type), images per lesion, age, sex and lesion site by diagnosis (when
the data has that metadata; the class-folder layout has none), image sizes (read from the file
headers), one example image per diagnosis and, with --split-file (or the class-folder layout's
split folders), each diagnosis's share per split. The report gives every figure's numbers in
tables. Figures and report are written atomically, the report last; an existing report is only
replaced with --force.
"""
from __future__ import annotations

import logging
from pathlib import Path

from skin_lesion import cli, layout


def build_parser():
    parser = cli.parser(__doc__)
    cli.add_dataset_arguments(parser, str(layout.HAM10000_DIR))
    parser.add_argument("--split-file", metavar="FILE",
                        help="split.csv from scripts/02_prepare_split.py: adds the shares per split")
    parser.add_argument("--out-dir", required=True, metavar="DIR",
                        help="where report.md and the figures go")
    parser.add_argument("--force", action="store_true", help="replace an existing report.md")
    return parser


def main(args) -> int:
    from skin_lesion.data.explore import check_split_matches, write_report
    from skin_lesion.data.split import read_split

    dataset = cli.read_dataset(args)
    split = None
    if args.split_file:
        split = read_split(Path(args.split_file))
        check_split_matches(dataset.table, split, Path(args.split_file))
    report = write_report(dataset, Path(args.out_dir), split,
                          f"`{args.split_file}`" if args.split_file else None, args.force)
    logging.info("Wrote %s", report)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
