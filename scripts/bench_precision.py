#!/usr/bin/env python
"""Measure training-step throughput (images/s) under each --precision policy.

Mixed bfloat16 can pay on CPUs with bf16 matrix units (AVX512-BF16, AMX) and mixed float16 on
GPUs with Tensor Cores; this prints the figures for the machine it runs on, on random data so
that only the model's arithmetic is timed.
"""
from __future__ import annotations

import argparse
import time

import keras
import numpy as np

from src import cli
from src.model import SkinLesionCNN, compile_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--architecture", default="resnet50", help="(default: %(default)s)")
    parser.add_argument("--img-size", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32, help="(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default: %(default)s)")
    parser.add_argument("--precision", nargs="+", default=["float32", "mixed_bfloat16"],
                        help="Keras dtype policies to compare (default: %(default)s)")
    args = parser.parse_args(argv)

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
    cli.run(main)
