#!/usr/bin/env python
"""Measure training-step throughput (images/s) under each --precision policy.

Mixed bfloat16 can pay on CPUs with bf16 matrix units (AVX512-BF16, AMX) and mixed float16 on
GPUs with Tensor Cores; this prints the figures for the machine it runs on, on random data so
that only the model's arithmetic is timed.
"""
from __future__ import annotations

import time

from src import cli


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--architecture", default="resnet50", help="model to time (default: %(default)s)")
    parser.add_argument("--img-size", type=cli.positive_int, default=128, help="input size (default: %(default)s)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=32, help="images per step (default: %(default)s)")
    parser.add_argument("--steps", type=cli.positive_int, default=10, help="timed steps (default: %(default)s)")
    parser.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"],
                        help="Keras dtype policies to compare (default: %(default)s)")
    return parser


def main(args) -> int:
    import keras
    import numpy as np

    from src.models.factory import SkinLesionCNN, compile_model

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.batch_size, args.img_size, args.img_size, 3)).astype(np.float32)
    targets = rng.integers(0, 2, (args.batch_size, 1)).astype(np.float32)
    print(f"{args.architecture} {args.img_size}x{args.img_size}, batch {args.batch_size}, all layers trained")
    for policy in args.precision:
        keras.mixed_precision.set_global_policy(policy)
        model = SkinLesionCNN(args.architecture, weights="none", img_size=args.img_size).build()
        model.trainable = True
        compile_model(model, "binary", 1e-4)
        for _ in range(2):  # compile the step function
            model.train_on_batch(images, targets)
        start = time.perf_counter()
        for _ in range(args.steps):
            model.train_on_batch(images, targets)
        rate = args.steps * args.batch_size / (time.perf_counter() - start)
        print(f"{policy:<16} {rate:8.1f} images/s")
        keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main)
