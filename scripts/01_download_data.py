#!/usr/bin/env python
"""Download HAM10000 from Kaggle (kmader/skin-cancer-mnist-ham10000), extract and verify it.

Needs Kaggle credentials (~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY, or
KAGGLE_API_TOKEN); without them it stops before any network call and explains how to set them
up or download by hand. Safe to run again: a verified dataset is left as it is.
"""
from __future__ import annotations

from skin_lesion import cli, layout


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", default=str(layout.HAM10000_DIR),
                        help="where the dataset goes (default: %(default)s)")
    parser.add_argument("--from-zip", metavar="PATH",
                        help="use a zip downloaded by hand instead of the Kaggle API")
    return parser


def main(args) -> int:
    from skin_lesion.data.download import fetch_ham10000

    fetch_ham10000(args.data_dir, archive=args.from_zip)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
