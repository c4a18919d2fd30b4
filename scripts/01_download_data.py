#!/usr/bin/env python
"""Download a dataset from its official source, extract and verify it (default: HAM10000).

  ham10000     Kaggle kmader/skin-cancer-mnist-ham10000 (needs Kaggle credentials)
  isic2019     ISIC 2019 challenge files, https://isic-challenge-data.s3.amazonaws.com/2019/
  isic2020     ISIC 2020 challenge files, https://isic-challenge-data.s3.amazonaws.com/2020/
               (or --kaggle: competition siim-isic-melanoma-classification, rules accepted)
  pad-ufes-20  Mendeley Data, https://data.mendeley.com/datasets/zr7vgbcyr2/1

Kaggle credentials are ~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY, or
KAGGLE_API_TOKEN; without them it stops before any network call and explains how to set them
up or download by hand. Downloads go to downloads/ beside the dataset folder and resume where
they stopped. Safe to run again: a verified dataset is left as it is.
"""
from __future__ import annotations

from skin_lesion import cli, layout


def build_parser():
    from skin_lesion.data.download import DOWNLOADS  # the dataset registry: pandas, no TensorFlow

    parser = cli.parser(__doc__)
    parser.add_argument("--dataset", choices=tuple(DOWNLOADS), default="ham10000", metavar="NAME",
                        help=f"which dataset: {', '.join(DOWNLOADS)} (default: %(default)s)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help=f"where the dataset goes (default: {layout.DATA_DIR}/<dataset folder>, "
                             f"e.g. {layout.HAM10000_DIR}, {layout.DATA_DIR}/ISIC2019)")
    parser.add_argument("--from-zip", metavar="PATH", action="append",
                        help="use a file downloaded by hand instead of downloading (repeat it for "
                             "datasets that come as several files, such as ISIC's zip and CSVs)")
    parser.add_argument("--kaggle", action="store_true",
                        help="isic2020: download the Kaggle competition instead of the ISIC files "
                             "(needs credentials and the competition's rules accepted; over 100 GB)")
    return parser


def main(args) -> int:
    from skin_lesion.data.download import fetch_dataset

    fetch_dataset(args.dataset, args.data_dir, args.from_zip or (), kaggle=args.kaggle)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
