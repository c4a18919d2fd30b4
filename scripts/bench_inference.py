#!/usr/bin/env python
"""Measure end-to-end inference throughput (read + decode + resize + model) in images/s.

Builds an untrained model of the given architecture (speed does not depend on the weights) and
streams the images of a folder through skin_lesion.serving.inference.predict_paths, exactly as
06_infer.py does. Nothing is written.
"""
from __future__ import annotations

import time

from skin_lesion import cli


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--data-dir", required=True, help="HAM10000 folder (Kaggle layout)")
    parser.add_argument("--architecture", nargs="+", default=["simple_cnn", "efficientnet_b0", "resnet50"],
                        help="architectures to time (default: %(default)s)")
    parser.add_argument("--img-size", type=cli.positive_int, help="input size (default: each architecture's own)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=32, help="images per batch (default: %(default)s)")
    parser.add_argument("--limit", type=cli.positive_int, default=300, help="images to score at most (default: %(default)s)")
    return parser


def main(args) -> int:
    from skin_lesion.data.datasets import load_dataset
    from skin_lesion.models.factory import SkinLesionCNN
    from skin_lesion.serving.inference import predict_paths
    from skin_lesion.serving.predictor import Predictor
    from skin_lesion.tasks import BINARY, Task

    dataset = load_dataset(args.data_dir)
    task = Task(BINARY, dataset.label_space)
    paths = dataset.table["image_path"].tolist()[: args.limit]
    print(f"data: {args.data_dir} ({len(paths)} images), batch {args.batch_size}")
    for name in args.architecture:
        model = SkinLesionCNN(name, task, weights="none", img_size=args.img_size).build()
        predictor = Predictor(model, model_file=None, task=task)
        list(predict_paths(predictor, paths[: args.batch_size], batch_size=args.batch_size, progress=False))
        start = time.perf_counter()
        rows = list(predict_paths(predictor, paths, batch_size=args.batch_size, progress=False))
        seconds = time.perf_counter() - start
        print(f"{name:<20} {predictor.img_size}x{predictor.img_size}: {len(rows) / seconds:8.1f} images/s")
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main)
