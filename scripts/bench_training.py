#!/usr/bin/env python
"""Measure real training epochs (images/s) under several settings: precision, determinism,
XLA compilation, steps per execution.

Each variant trains the same model from scratch on the same cached split through the project's
own pipeline and trainer (skin_lesion.training.benchmark), in a fresh process (precision and op
determinism are process-wide), and the median images/s of the timed epochs is printed. Nothing is
written to outputs/; the image cache goes to a temporary folder unless --cache-dir is given.
Example:
  python scripts/bench_training.py --split-file outputs/split/split.csv --architecture vgg_scratch \\
      --img-size 64 --variant float32:precision=float32 --variant bf16:precision=bfloat16 \\
      --variant deterministic:precision=float32,deterministic=true
"""
from __future__ import annotations

import json
import subprocess
import sys

from skin_lesion import cli

def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--split-file", required=True, help="split table from 02_prepare_split.py")
    parser.add_argument("--architecture", default="vgg_scratch", help="model to time (default: %(default)s)")
    parser.add_argument("--img-size", type=cli.positive_int, default=64, help="input size (default: %(default)s)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=64, help="images per step (default: %(default)s)")
    parser.add_argument("--epochs", type=cli.positive_int, default=2,
                        help="timed epochs per variant, after one warm-up epoch (default: %(default)s)")
    parser.add_argument("--cache-dir", help="reuse this image cache folder (e.g. outputs/cache)")
    parser.add_argument("--variant", action="append", metavar="NAME:KEY=VALUE,...",
                        help="a named set of training settings; repeat for several (default: float32 and "
                             "bfloat16)")
    return parser


def parse_value(text: str):
    """``true``, ``3``, ``1e-3`` as JSON; anything else (``bfloat16``) as a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, settings = text.partition(":")
    pairs = [item.split("=", 1) for item in settings.split(",") if item]
    return name, {key.replace("-", "_"): parse_value(value) for key, value in pairs}


def main(args) -> int:
    variants = args.variant or ["float32:precision=float32", "bfloat16:precision=bfloat16"]
    base = {"split_file": args.split_file, "architecture": args.architecture, "img_size": args.img_size,
            "batch_size": args.batch_size, "cache_dir": args.cache_dir}
    print(f"{args.architecture} {args.img_size}x{args.img_size}, batch {args.batch_size}, "
          f"median of {args.epochs} epoch(s) after a warm-up epoch")
    for name, settings in map(parse_variant, variants):
        result = subprocess.run([sys.executable, "-m", "skin_lesion.training.benchmark",
                                 json.dumps({**base, **settings}), str(args.epochs)],
                                capture_output=True, text=True)
        if result.returncode:
            print(f"{name:<16} failed: {result.stderr.strip().splitlines()[-1]}")
            continue
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{name:<16} {figures['images_per_second']:8.1f} images/s  ({figures['policy']})")
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
