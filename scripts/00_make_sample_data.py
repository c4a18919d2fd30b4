#!/usr/bin/env python
"""Write the small synthetic sample dataset used by the README demo: HAM10000's Kaggle layout,
or with --layout the same images laid out as ISIC 2019, ISIC 2020, PAD-UFES-20 or an image list
(each with its quirks), to see and test what each dataset's reader expects."""
from __future__ import annotations

import logging
from pathlib import Path

from skin_lesion import cli, layout

LAYOUTS = ("ham10000", "isic2019", "isic2020", "pad-ufes-20", "image-list")


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--out-dir", help=f"folder to create (default: {layout.SAMPLE_DIR}, or "
                                          f"{layout.SAMPLE_DIR}_<layout>)")
    parser.add_argument("--layout", choices=LAYOUTS, default="ham10000", help="file layout (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild the folder if it exists")
    return parser


def main(args) -> int:
    from skin_lesion.data.datasets import load_dataset
    from skin_lesion.data.relayout import relay
    from skin_lesion.data.sample import make_sample_dataset

    if args.layout == "ham10000":
        data = make_sample_dataset(args.out_dir or layout.SAMPLE_DIR, seed=args.seed, force=args.force)
    else:
        ham = Path(layout.SAMPLE_DIR)
        if not ham.exists():
            make_sample_dataset(ham, seed=args.seed)
        data = relay(load_dataset(ham, "ham10000"), Path(args.out_dir or f"{ham}_{args.layout}"),
                     args.layout, args.force)
    dataset = load_dataset(data)
    logging.info("Wrote %d images of %d lesions (%s; %d classes of %s) to %s", len(dataset.table),
                 dataset.table["lesion_id"].nunique(), dataset.provenance.name, len(dataset.label_space.codes),
                 dataset.label_space.name, data)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
