#!/usr/bin/env python
"""Search hyperparameters with Optuna: TPE sampling, trials pruned early from the per-epoch
validation PR-AUC, every trial a normal run folder.

Takes the settings of 03_train.py (--config FILE and the same flags) as the base of every
trial; the search space (learning rates around the architecture's defaults, dropout, dense
units, unfreeze depth, image size, weight decay, label smoothing, schedule) comes from
src/skin_lesion/training/search.py and can be overridden with --space FILE (JSON: {"dropout": {"type":
"float", "low": 0.1, "high": 0.4}, "img_size": {"type": "categorical", "choices": [64, 80]},
"label_smoothing": null}). Trials go to <outputs-dir>/search/<study>/runs/; the study is kept in
<outputs-dir>/search/<study>/study.db (or --storage URL), so running the same command again
resumes it. At the end the study folder holds best_config.json (for 03_train.py --config),
trials.csv and Optuna's plots. The test split is never read.
"""
from __future__ import annotations

import logging
from pathlib import Path

from skin_lesion import cli
from skin_lesion.training.config import TrainConfig, add_train_arguments, given_settings


def build_parser():
    parser = cli.parser(__doc__)
    add_train_arguments(parser)
    parser.add_argument("--config", metavar="FILE", help="JSON file of base settings for every trial")
    parser.add_argument("--trials", type=cli.positive_int, default=20,
                        help="finished trials the study should hold (default: %(default)s)")
    parser.add_argument("--timeout", type=cli.positive_int, metavar="SECONDS",
                        help="stop starting new trials after this long")
    parser.add_argument("--study-name", help="name of the study (default: <architecture>_<task>)")
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna storage, e.g. postgresql://user:pass@host/db to share a study "
                             "between machines (default: SQLite in the study's folder)")
    parser.add_argument("--space", metavar="FILE", help="JSON file overriding entries of the search space")
    return parser


def main(args) -> int:
    from skin_lesion.training.search import run_search

    given = given_settings(args)
    base = (TrainConfig.from_file(args.config, given) if args.config else TrainConfig.from_sources({}, given)).resolved()
    study = run_search(base, args.trials, args.study_name or f"{base.architecture}_{base.task}", args.storage,
                       args.timeout, args.space and Path(args.space))
    states = [trial.state.name.lower() for trial in study.trials]
    logging.info("Study %s: %s", study.study_name,
                 ", ".join(f"{states.count(state)} {state}" for state in sorted(set(states))))
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main)
