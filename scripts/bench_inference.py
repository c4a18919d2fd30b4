#!/usr/bin/env python
"""Measure end-to-end inference throughput (read + decode + resize + model) in images/s.

Builds an untrained model of the given architecture (speed does not depend on the weights) and
streams the images of a folder through src.inference.predict_paths, exactly as 06_infer.py
does. Nothing is written.
"""
from __future__ import annotations

import argparse
import time

from src import cli
from src.data import load_dataset
from src.inference import predict_paths
from src.model import SkinLesionCNN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", required=True, help="HAM10000 folder (Kaggle layout)")
    parser.add_argument("--architecture", nargs="+", default=["simple_cnn", "efficientnet_b0", "resnet50"],
                        help="architectures to time (default: %(default)s)")
    parser.add_argument("--img-size", type=int, help="input size (default: each architecture's own)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    parser.add_argument("--limit", type=int, default=300, help="images to score at most (default: %(default)s)")
    args = parser.parse_args(argv)

    paths = load_dataset(args.data_dir).table["image_path"].tolist()[: args.limit]
    print(f"data: {args.data_dir} ({len(paths)} images), batch {args.batch_size}")
    for name in args.architecture:
        model = SkinLesionCNN(name, weights="none", img_size=args.img_size).build()
        list(predict_paths(model, paths[: args.batch_size], "binary", 0.5, args.batch_size, progress=False))
        start = time.perf_counter()
        rows = list(predict_paths(model, paths, "binary", 0.5, args.batch_size, progress=False))
        seconds = time.perf_counter() - start
        size = model.input_shape[1]
        print(f"{name:<20} {size}x{size}: {len(rows) / seconds:8.1f} images/s")
    return 0


if __name__ == "__main__":
    cli.run(main)
