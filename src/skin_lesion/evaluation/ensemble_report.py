"""An ensemble against its members on the test split, with paired lesion-bootstrap intervals.

Every member is scored by its own run (its model, size and calibration) on the test images the
ensemble scored (those all of them could read), and each bootstrap replicate resamples the same
lesions for all, so the gains are paired. The best member is the one with the best point value on
the test split (which favours the member: the gain is not flattered); the members' mean is the
average of their figures.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn import metrics

from skin_lesion.defaults import PREDICTION_BATCH
from skin_lesion.layout import open_run
from skin_lesion.metrics import cluster_bootstrap, macro_roc_auc, ranking_metrics
from skin_lesion.serving.predictor import Predictor, from_run
from skin_lesion.serving.splits import run_split_images, score_split


def figures(predictor: Predictor, labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """ROC-AUC and PR-AUC of the malignant score; balanced accuracy and macro ROC-AUC too with
    several classes."""
    truth = predictor.task.malignant_of_labels(labels)
    result = ranking_metrics(truth, predictor.scores(probabilities))
    if not predictor.task.is_binary:
        result["balanced_accuracy"] = float(metrics.balanced_accuracy_score(labels, predictor.top_classes(probabilities)))
        result["macro_roc_auc"] = macro_roc_auc(labels, probabilities)
    return result


def member_probabilities(member_run: str, ensemble: Predictor) -> tuple[Predictor, pd.Series]:
    """A member's calibrated test probabilities by image id, with the predictor that reads them (a
    7-class member of a binary ensemble gives its malignant score, read as the ensemble's)."""
    run = open_run(Path(member_run))
    predictor = from_run(run)
    images = run_split_images(run, "test", predictor.img_size)
    probabilities = score_split(predictor, images, PREDICTION_BATCH).probabilities
    if predictor.task != ensemble.task:
        predictor, probabilities = ensemble, predictor.scores(probabilities)
    return predictor, pd.Series(list(probabilities), index=images.table["image_id"].to_numpy())


def compare_with_members(members: list[dict], predictor: Predictor, table: pd.DataFrame,
                         probabilities: np.ndarray, groups: str, samples: int) -> dict:
    """Each figure of the ensemble, its best member and the members' mean, and the paired gains."""
    scored = [member_probabilities(member["run"], predictor) for member in members]
    shared = table["image_id"].isin(set.intersection(*(set(s.index) for _, s in scored))).to_numpy()
    ids, labels, clusters = table["image_id"][shared], table["label"].to_numpy()[shared], table[groups].to_numpy()[shared]
    ensemble = probabilities[shared]
    own = [(member, np.stack(series.loc[ids].to_list())) for member, series in scored]

    def compared(rows: np.ndarray) -> dict[str, float]:
        mine = figures(predictor, labels[rows], ensemble[rows])
        theirs = [figures(member, labels[rows], values[rows]) for member, values in own]
        result = {}
        for key in point:
            value, values = mine[key], [figure[key] for figure in theirs]
            best, mean = values[int(np.nanargmax(point[key]))], float(np.mean(values))
            result.update({f"{key}/ensemble": value, f"{key}/best_member": best, f"{key}/members_mean": mean,
                           f"{key}/gain_over_best": value - best, f"{key}/gain_over_mean": value - mean})
        return result

    everything = np.arange(len(labels))
    defined = {key for key, value in figures(predictor, labels, ensemble).items() if np.isfinite(value)}
    point = {key: [figures(member, labels, values)[key] for member, values in own] for key in defined}
    point = {key: values for key, values in point.items() if np.isfinite(values).all()}  # e.g. a class absent
    values, intervals = compared(everything), cluster_bootstrap(compared, clusters, samples)
    return {"images": int(shared.sum()), "best_member": {key: members[int(np.nanargmax(v))]["run"]
                                                          for key, v in point.items()},
            "figures": {key: {"value": value, "ci95": intervals.get(key)} for key, value in values.items()}}
