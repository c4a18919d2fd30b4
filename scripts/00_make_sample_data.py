#!/usr/bin/env python
"""Write the small synthetic sample dataset (Kaggle HAM10000 layout) used by the README demo."""
from __future__ import annotations

import logging

from skin_lesion import cli, layout


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--out-dir", default=str(layout.SAMPLE_DIR),
                        help="folder to create (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild the folder if it exists")
    return parser


def main(args) -> int:
    from skin_lesion.data.datasets import load_dataset
    from skin_lesion.data.sample import make_sample_dataset

    out_dir = make_sample_dataset(args.out_dir, seed=args.seed, force=args.force)
    table = load_dataset(out_dir).table
    logging.info("Wrote %d images of %d lesions to %s", len(table), table["lesion_id"].nunique(), out_dir)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
