#!/usr/bin/env python
"""Pick the decision threshold for a target sensitivity from validation predictions only.

Reads <run>/val_probs.npz (never the test split) and writes <run>/threshold.json (threshold,
sensitivity, specificity, PPV, NPV, and the operating points for sensitivities 0.80-0.95 and
Youden's J) with plots/roc_validation.png and plots/threshold_sweep.png. For the 7-class task
the score is the summed probability of akiec, bcc and mel.
"""
from __future__ import annotations

import argparse
import logging

from src import cli
from src.threshold import DEFAULT_TARGET, tune_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_run_arguments(parser)
    parser.add_argument("--target-sensitivity", type=float, default=DEFAULT_TARGET,
                        help="sensitivity the threshold must reach (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing threshold.json")
    args = parser.parse_args(argv)

    run = cli.open_run(args)
    result = tune_run(run, args.target_sensitivity, args.force)
    logging.info("Threshold %.4f: sensitivity %.3f, specificity %.3f on %d validation images -> %s",
                 result["threshold"], result["sensitivity"], result["specificity"],
                 result["validation_images"], run.threshold)
    return 0


if __name__ == "__main__":
    cli.run(main)
