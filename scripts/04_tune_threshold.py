#!/usr/bin/env python
"""Pick the decision threshold for a target sensitivity from validation predictions only.

Reads <run>/val_probs.npz, calibration.json and the task from training_config.json (never the
test split) and writes
<run>/threshold.json (threshold, sensitivity, specificity, PPV, NPV, the validation counts
with 95 % Wilson intervals for sensitivity and specificity, and the operating points for
sensitivities 0.80-0.95 and Youden's J) with plots/roc_validation.png and
plots/threshold_sweep.png. Scores are calibrated where the run fitted a calibration; for the
multi-class task the score is the summed probability of the malignant diagnoses (akiec, bcc and
mel for HAM10000).
"""
from __future__ import annotations

import logging

from skin_lesion import cli
from skin_lesion.defaults import TARGET_SENSITIVITY


def build_parser():
    parser = cli.parser(__doc__)
    cli.add_run_arguments(parser)
    parser.add_argument("--target-sensitivity", type=cli.unit_fraction, default=TARGET_SENSITIVITY,
                        help="sensitivity the threshold must reach, in (0, 1] (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing threshold.json")
    return parser


def main(args) -> int:
    from skin_lesion.evaluation.threshold import tune_run, validation_rates

    run = cli.open_run(args)
    result = tune_run(run, args.target_sensitivity, args.force)
    logging.info("Threshold %.4f: %s (Wilson intervals) -> %s", result["threshold"], validation_rates(result),
                 run.threshold)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
