#!/usr/bin/env python
"""Evaluate the best model of a run on the test split, once.

Writes <run>/test_metrics.json (ROC-AUC, PR-AUC, accuracy, balanced accuracy, sensitivity,
specificity, PPV and NPV at the tuned threshold and at 0.5, each with a 95 % bootstrap interval
that resamples lesions; confusion matrices; per-class report and macro ROC-AUC for several classes;
calibration error and Brier score before and after calibration), <run>/test_predictions.csv,
plots and the model card <run>/model_card.md. --tta averages over flips; --lesion-level scores
each lesion by the mean probability of its images (one row per lesion). Variants get their own
file names (test_metrics_tta.json, test_metrics_lesion.json, ...).

External validation: --data-dir OTHER [--dataset NAME] scores every image of another dataset
(ISIC 2019, ISIC 2020, PAD-UFES-20, an image list ...) into <run>/external/<dataset>/, its
diagnoses read in the model's classes through the synonym table, intervals resampling its lesions
or patients; the model card lists every external result.
"""
from __future__ import annotations

import logging

from skin_lesion import cli
from skin_lesion.defaults import BOOTSTRAP_SAMPLES, PREDICTION_BATCH


def build_parser():
    parser = cli.parser(__doc__)
    cli.add_run_arguments(parser)
    cli.add_dataset_arguments(parser, None, "validate on every image of another dataset (its folder, or an "
                                            "image list's CSV) instead of the test split")
    parser.add_argument("--tta", action="store_true", help="average predictions over flips")
    parser.add_argument("--lesion-level", action="store_true",
                        help="score lesions by the mean probability of their images")
    parser.add_argument("--bootstrap", type=cli.non_negative_int, default=BOOTSTRAP_SAMPLES,
                        help="bootstrap resamples for the 95%% intervals, 0 for none (default: %(default)s)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=PREDICTION_BATCH,
                        help="images scored at a time (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace existing results")
    return parser


def check(args) -> None:
    """A missing run or data folder is said before TensorFlow starts."""
    cli.open_run(args)
    cli.require_inputs([args.data_dir] if args.data_dir else [], "--data-dir",
                       "the other dataset's folder (or an image list's CSV)")


def main(args) -> int:
    from skin_lesion.evaluation.evaluate import evaluate_run
    from skin_lesion.evaluation.model_card import value_with_interval
    from skin_lesion.tasks import CLASS_METRICS, SCREENING_METRICS

    run = cli.open_run(args)
    if args.data_dir:
        return external(run, args)
    result = evaluate_run(run, args.tta, args.lesion_level, args.bootstrap, args.batch_size, args.force)
    classes = result.get(CLASS_METRICS)
    per_class = (f", balanced accuracy {value_with_interval(classes['balanced_accuracy'])}, macro ROC-AUC "
                 f"{value_with_interval(classes['macro_roc_auc'])}" if classes else "")
    logging.info("Test ROC-AUC (malignant score) %s%s on %d %ss -> %s",
                 value_with_interval(result[SCREENING_METRICS]["roc_auc"]), per_class, result["cases"],
                 result["level"], result["metrics_file"])
    return 0


def external(run, args) -> int:
    from skin_lesion.data.dataset import GROUP_NAMES
    from skin_lesion.evaluation.external import validate_externally
    from skin_lesion.evaluation.model_card import value_with_interval
    from skin_lesion.tasks import SCREENING_METRICS

    result = validate_externally(run, cli.read_dataset(args), args.bootstrap, args.batch_size, args.force)
    logging.info("External ROC-AUC %s on %d images of %s (%d %ss) -> %s",
                 value_with_interval(result[SCREENING_METRICS]["roc_auc"]), result["images"], result["dataset"],
                 result["groups"], GROUP_NAMES[result["grouped_by"]], result["metrics_file"])
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, check=check)
