#!/usr/bin/env python
"""Average the probabilities of finished runs in one model, as a new run folder.

  scripts/ensemble.py --runs RUN1 RUN2 [--weights 1 2]       the runs given
  scripts/ensemble.py --select-from RUN1 RUN2 RUN3 --max-members 3
                                                              chosen on validation only

The new run (<outputs-dir>/runs/<time>_ensemble_<task>) holds one Keras model: it takes the image at
the largest member's size (and the metadata, if any member uses it), resizes it inside the model for
each member and adds the members' weighted probabilities. Its calibration is refitted on
validation, its out-of-distribution flag fitted, and its training_config.json lists the members
(and the selection trace). Threshold, evaluation, inference, explanations, the app and export then
use it as any run. Members must share the label space and split file; with a binary member the
ensemble is binary and its 7-class members give their malignant score.
"""
from __future__ import annotations

import logging

from skin_lesion import cli, layout
from skin_lesion.errors import ConfigError


def build_parser():
    parser = cli.parser(__doc__)
    chosen = parser.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--runs", nargs="+", metavar="RUN", help="the run folders to average")
    chosen.add_argument("--select-from", nargs="+", metavar="RUN",
                        help="candidate run folders: greedy forward selection on their validation results "
                             "(PR-AUC for a binary ensemble, macro ROC-AUC for several classes)")
    parser.add_argument("--weights", nargs="+", type=cli.bounded_number(float, 0, low_inclusive=False),
                        metavar="W", help="one weight per --runs run (default: equal)")
    parser.add_argument("--max-members", type=cli.positive_int, default=3,
                        help="picks of --select-from, repeats included, at least 2 (default: %(default)s)")
    parser.add_argument("--outputs-dir", metavar="DIR", default=str(layout.OUTPUTS_DIR),
                        help="where the ensemble's run folder goes (default: %(default)s)")
    return parser


def check(args) -> None:
    if args.weights and not args.runs:
        raise ConfigError("--weights goes with --runs; --select-from weighs runs by how often it picks them.")
    if args.max_members < 2:
        raise ConfigError(f"--max-members must be at least 2 (an ensemble of one run is that run); got {args.max_members}.")


def main(args) -> int:
    from skin_lesion.training.ensemble import make_ensemble, select_members

    runs, weights, selection = args.runs, args.weights, None
    if args.select_from:
        runs, weights, selection = select_members(args.select_from, args.max_members)
    run = make_ensemble(runs, weights, args.outputs_dir, selection)
    logging.info("Ensemble of %d runs: %s", len(runs), run.root)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, check=check)
