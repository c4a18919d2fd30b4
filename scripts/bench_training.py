#!/usr/bin/env python
"""Measure real training epochs (images/s, seconds per epoch) under several settings: precision,
determinism, XLA compilation, steps per execution; or a recipe as shipped (--config).

Each variant trains the same model from scratch on the same cached split through the project's
own pipeline and trainer (skin_lesion.training.benchmark), in a fresh process (precision and op
determinism are process-wide), and the median of the timed epochs is printed. Nothing is written
to outputs/; the image cache goes to a temporary folder unless --cache-dir is given. Example,
the binary recipe as an AVX2-only CPU runs it (--precision auto is float32 there):
  ONEDNN_MAX_CPU_ISA=AVX2 python scripts/bench_training.py --split-file outputs/split/split.csv \\
      --config configs/cpu_binary.json
"""
from __future__ import annotations

import json
import subprocess
import sys

from skin_lesion import cli

def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--split-file", required=True, help="split table from 02_prepare_split.py")
    parser.add_argument("--config", metavar="FILE",
                        help="time this recipe (e.g. configs/cpu_binary.json): its settings are every variant's base")
    parser.add_argument("--architecture", help="model to time (default: the recipe's, else vgg_scratch)")
    parser.add_argument("--img-size", type=cli.positive_int, help="input size (default: the recipe's, else 64)")
    parser.add_argument("--batch-size", type=cli.positive_int, help="images per step (default: the recipe's, else 64)")
    parser.add_argument("--epochs", type=cli.positive_int, default=2,
                        help="timed epochs per variant, after one warm-up epoch (default: %(default)s)")
    parser.add_argument("--cache-dir", help="reuse this image cache folder (e.g. outputs/cache)")
    parser.add_argument("--variant", action="append", metavar="NAME:KEY=VALUE,...",
                        help="a named set of training settings; repeat for several (default: the recipe as "
                             "shipped with --config, else float32 and bfloat16)")
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


def base_settings(args) -> dict:
    """The recipe's settings (or the bare model's), with the flags given on top."""
    from skin_lesion.training.config import TrainConfig

    recipe = TrainConfig.from_file(args.config).as_dict() if args.config else {
        "architecture": "vgg_scratch", "img_size": 64, "batch_size": 64}
    given = {"architecture": args.architecture, "img_size": args.img_size, "batch_size": args.batch_size}
    return {**recipe, **{key: value for key, value in given.items() if value is not None},
            "split_file": args.split_file, "cache_dir": args.cache_dir}


def main(args) -> int:
    default = ["as-shipped"] if args.config else ["float32:precision=float32", "bfloat16:precision=bfloat16"]
    variants, base = args.variant or default, base_settings(args)
    print(f"{args.config + ': ' if args.config else ''}{base['architecture']} {base['img_size']}x{base['img_size']}, "
          f"batch {base['batch_size']}, median of {args.epochs} epoch(s) after a warm-up epoch")
    for name, settings in map(parse_variant, variants):
        result = subprocess.run([sys.executable, "-m", "skin_lesion.training.benchmark",
                                 json.dumps({**base, **settings}), str(args.epochs)],
                                capture_output=True, text=True)
        if result.returncode:
            print(f"{name:<16} failed: {result.stderr.strip().splitlines()[-1]}")
            continue
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{name:<16} {figures['images_per_second']:8.1f} images/s  {figures['seconds_per_epoch']:6.1f} s/epoch"
              f"  ({figures['policy']})")
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
