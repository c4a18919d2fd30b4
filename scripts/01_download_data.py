#!/usr/bin/env python
"""Download HAM10000 from Kaggle (kmader/skin-cancer-mnist-ham10000), extract and verify it.

Needs Kaggle credentials (~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY, or
KAGGLE_API_TOKEN); without them it stops before any network call and explains how to set them
up or download by hand. Safe to run again: a verified dataset is left as it is.
"""
from __future__ import annotations

import argparse

from src import cli, layout
from src.download import fetch_ham10000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(layout.HAM10000_DIR),
                        help="where the dataset goes (default: %(default)s)")
    parser.add_argument("--from-zip", metavar="PATH",
                        help="use a zip downloaded by hand instead of the Kaggle API")
    args = parser.parse_args(argv)
    fetch_ham10000(args.data_dir, archive=args.from_zip)
    return 0


if __name__ == "__main__":
    cli.run(main)
