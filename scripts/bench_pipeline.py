#!/usr/bin/env python
"""Measure input-pipeline throughput (images/s) for a data folder and image size.

Prints evaluation mode with a cold cache (decoding every JPEG into a fresh cache), evaluation
mode with a warm cache, and training mode (shuffled, augmented) with a warm cache. The cache is
built in a temporary folder, so nothing under outputs/ is touched.
"""
from __future__ import annotations

import tempfile
import time

from skin_lesion import cli


def images_per_second(dataset, epochs: int) -> float:
    for _ in dataset.take(2):  # warm-up: builds the graph and fills the prefetch buffer
        pass
    count, start = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _targets in dataset:
            count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", required=True, help="HAM10000 folder (Kaggle layout)")
    parser.add_argument("--img-size", type=cli.positive_int, default=224, help="square size (default: %(default)s)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=64, help="images per batch (default: %(default)s)")
    parser.add_argument("--epochs", type=cli.positive_int, default=10, help="warm passes to time (default: %(default)s)")
    parser.add_argument("--repeats", type=cli.positive_int, default=3,
                        help="measure each mode this many times; the median is printed (default: %(default)s)")
    return parser


def main(args) -> int:
    import numpy as np

    from skin_lesion.data.datasets import load_dataset
    from skin_lesion.data.images import decode_files
    from skin_lesion.data.pipeline import Augmentation, load_split_images, make_dataset

    table = load_dataset(args.data_dir).table.assign(split="train")
    size = (args.img_size, args.img_size)
    list(decode_files(table["image_path"].tolist()[:8], size))  # trace the decoder once
    figures: dict[str, list[float]] = {"cold": [], "eval": [], "train": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache_dir:
            start = time.perf_counter()
            images = load_split_images(table, "train", size, cache_dir)
            figures["cold"].append(len(table) / (time.perf_counter() - start))
            targets = np.zeros((len(images.rows), 1), np.float32)
            evaluation = make_dataset(images, targets, args.batch_size, training=False)
            training = make_dataset(images, targets, args.batch_size, training=True,
                                    augmentation=Augmentation(), seed=0)
            figures["eval"].append(images_per_second(evaluation, args.epochs))
            figures["train"].append(images_per_second(training, args.epochs))
    print(f"data: {args.data_dir} ({len(table)} images), size {args.img_size}x{args.img_size}, "
          f"batch {args.batch_size}; median (min-max) of {args.repeats} runs")
    labels = {"cold": "evaluation, cold cache (decode + resize + write)",
              "eval": "evaluation, warm cache",
              "train": "training with augmentation, warm cache"}
    for key, label in labels.items():
        values = figures[key]
        print(f"{label:<50} {np.median(values):7.0f} images/s ({min(values):.0f}-{max(values):.0f})")
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main)
