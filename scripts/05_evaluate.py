#!/usr/bin/env python
"""Evaluate the best model of a run on the test split, once.

Writes <run>/test_metrics.json (ROC-AUC, PR-AUC, accuracy, balanced accuracy, sensitivity,
specificity, PPV and NPV at the tuned threshold and at 0.5, each with a 95 % bootstrap interval
that resamples lesions; confusion matrices; per-class report and macro ROC-AUC for 7 classes;
expected calibration error), <run>/test_predictions.csv and plots. --tta averages over flips;
--lesion-level scores each lesion by the mean probability of its images. Variants get their
own file names (test_metrics_tta.json, test_metrics_lesion.json, ...).
"""
from __future__ import annotations

import argparse
import logging
from src import cli
from src.evaluation import BOOTSTRAP_SAMPLES, evaluate_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_run_arguments(parser)
    parser.add_argument("--tta", action="store_true", help="average predictions over flips")
    parser.add_argument("--lesion-level", action="store_true",
                        help="score lesions by the mean probability of their images")
    parser.add_argument("--bootstrap", type=int, default=BOOTSTRAP_SAMPLES,
                        help="bootstrap resamples for the intervals (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace existing results")
    args = parser.parse_args(argv)

    run = cli.open_run(args)
    result = evaluate_run(run, args.tta, args.lesion_level, args.bootstrap, args.batch_size, args.force)
    auc = result["binary"]["roc_auc"]
    logging.info("Test ROC-AUC %.3f (95%% CI %.3f-%.3f) on %d %ss -> %s", auc["value"], *auc["ci95"],
                 result["cases"], result["level"], result["metrics_file"])
    return 0


if __name__ == "__main__":
    cli.run(main)
