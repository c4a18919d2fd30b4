"""Threshold search, bootstrap and metrics against hand-computed cases and scikit-learn."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest
from sklearn import metrics

from skin_lesion.evaluation.evaluate import aggregate_lesions, evaluate_predictions
from tests.conftest import BINARY_TASK, SEVEN_CLASS_TASK
from skin_lesion.evaluation.threshold import candidate_table, point_for_sensitivity, tune_threshold, validation_rates
from skin_lesion.metrics import brier_score, cluster_bootstrap, expected_calibration_error, rates_at


def test_sweep_covers_grid_and_every_distinct_score():
    scores = np.array([0.12345, 0.5, 0.77777, 0.5])
    table = candidate_table(scores, np.array([0, 1, 1, 0]))
    assert len(table) >= 1001
    assert {0.12345, 0.77777, 0.0, 1.0} <= set(table["threshold"])


def test_threshold_hand_computed_case_with_ties():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    truth = np.array([0, 0, 1, 0, 1, 0, 1, 1])
    result = tune_threshold(scores, truth, target=0.75)
    # Every threshold in (0.4, 0.6] gives TP 3, FN 1, TN 3, FP 1; the highest one is chosen.
    assert result["threshold"] == 0.6
    assert (result["sensitivity"], result["specificity"], result["ppv"], result["npv"]) == (0.75, 0.75, 0.75, 0.75)
    assert (result["tp"], result["fp"], result["tn"], result["fn"]) == (3, 1, 3, 1)
    # Youden's J ties at 0.5 between t=0.3 (1.0/0.5) and t=0.6 (0.75/0.75): higher sensitivity wins.
    youden = result["operating_points"]["youden_j"]
    assert youden["threshold"] == 0.3 and youden["sensitivity"] == 1.0 and youden["specificity"] == 0.5
    at_95 = result["operating_points"]["sensitivity_0.95"]
    assert at_95["sensitivity"] == 1.0 and at_95["specificity"] == 0.5


def test_operating_points_carry_their_counts_and_wilson_intervals():
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    result = tune_threshold(scores, np.array([0, 0, 1, 0, 1, 0, 1, 1]), target=0.75)
    # 3 of 4 either way; Wilson by hand: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n).
    assert (result["malignant"], result["benign"], result["tp"], result["tn"]) == (4, 4, 3, 3)
    assert result["sensitivity_ci95"] == result["specificity_ci95"] == pytest.approx((0.3006, 0.9544), abs=1e-4)
    assert result["interval_method"] == "wilson"
    for point in result["operating_points"].values():
        expected = binomtest(point["tp"], point["malignant"]).proportion_ci(0.95, method="wilson")
        assert point["sensitivity_ci95"] == pytest.approx((expected.low, expected.high))


def test_a_perfect_operating_point_on_few_images_says_how_uncertain_it_is():
    scores = np.r_[np.linspace(0.01, 0.4, 59), np.linspace(0.6, 0.99, 19)]
    result = tune_threshold(scores, np.r_[np.zeros(59, int), np.ones(19, int)], target=0.95)
    assert result["sensitivity"] == result["specificity"] == 1.0
    assert result["sensitivity_ci95"] == pytest.approx((0.8318, 1.0), abs=1e-4)  # 19 of 19
    assert result["specificity_ci95"] == pytest.approx((0.9389, 1.0), abs=1e-4)  # 59 of 59
    assert validation_rates(result) == ("sensitivity 1.000 (95 % CI 0.83–1.00), specificity 1.000 "
                                        "(95 % CI 0.94–1.00) on 19 malignant / 59 benign validation images")
    older = {key: result[key] for key in ("threshold", "sensitivity", "specificity")}  # tuned before intervals
    assert "re-run scripts/04_tune_threshold.py --force" in validation_rates(older)


def test_perfect_separation_reaches_both():
    result = tune_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]), target=0.9)
    assert result["sensitivity"] == 1.0 and result["specificity"] == 1.0
    assert result["threshold"] == 0.8 and result["npv"] == 1.0 and result["ppv"] == 1.0


def test_all_equal_scores_make_the_target_unreachable():
    with pytest.raises(ValueError, match="only reached by calling every validation image malignant"):
        tune_threshold(np.full(6, 0.5), np.array([0, 1, 0, 1, 0, 1]), target=0.9)


def test_single_class_validation_set_and_bad_target_are_refused():
    with pytest.raises(ValueError, match="only benign cases"):
        tune_threshold(np.array([0.1, 0.9]), np.array([0, 0]))
    with pytest.raises(ValueError, match="--target-sensitivity must be in"):
        point_for_sensitivity(candidate_table(np.array([0.1, 0.9]), np.array([0, 1])), 1.5)


def test_cluster_bootstrap_known_case():
    # Lesion A: three correctly classified images; lesion B: one wrong image. Resampling the two
    # lesions gives accuracy 1 (AA), 3/4 (AB, BA) or 0 (BB), each pair drawn with chance 1/4, so
    # the 95 % interval is [0, 1]. Resampling the four images would give [0.25, 1].
    correct = np.array([1.0, 1.0, 1.0, 0.0])

    def accuracy(indices):
        return {"accuracy": correct[indices].mean()}

    lesions = np.array(["A", "A", "A", "B"])
    draws = cluster_bootstrap(accuracy, lesions, samples=4000, seed=1)
    assert draws["accuracy"] == [0.0, 1.0]
    images = cluster_bootstrap(accuracy, np.arange(4), samples=4000, seed=1)
    assert images["accuracy"] == [0.25, 1.0]
    constant = cluster_bootstrap(lambda idx: {"one": 1.0}, lesions, samples=50)
    assert constant["one"] == [1.0, 1.0]


def test_binary_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    score = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 300), 0, 1)
    lesions = np.repeat(np.arange(150), 2)
    result = evaluate_predictions(labels, score, lesions, BINARY_TASK, {"tuned": 0.42, "0.5": 0.5}, samples=200)
    binary = result["binary"]
    assert binary["roc_auc"]["value"] == pytest.approx(metrics.roc_auc_score(labels, score))
    assert binary["pr_auc"]["value"] == pytest.approx(metrics.average_precision_score(labels, score))
    for name, threshold in (("tuned", 0.42), ("0.5", 0.5)):
        predicted = (score >= threshold).astype(int)
        assert binary[f"sensitivity@{name}"]["value"] == pytest.approx(metrics.recall_score(labels, predicted))
        assert binary[f"specificity@{name}"]["value"] == pytest.approx(metrics.recall_score(1 - labels, 1 - predicted))
        assert binary[f"ppv@{name}"]["value"] == pytest.approx(metrics.precision_score(labels, predicted))
        assert binary[f"accuracy@{name}"]["value"] == pytest.approx(metrics.accuracy_score(labels, predicted))
        assert binary[f"balanced_accuracy@{name}"]["value"] == pytest.approx(
            metrics.balanced_accuracy_score(labels, predicted))
        low, high = binary[f"sensitivity@{name}"]["ci95"]
        assert low < binary[f"sensitivity@{name}"]["value"] < high
    assert result["confusion_matrix"]["tuned"] == metrics.confusion_matrix(labels, (score >= 0.42).astype(int)).tolist()


def test_multiclass_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    labels = np.tile(np.arange(7), 30)
    logits = rng.normal(0, 1, (210, 7)) + np.eye(7)[labels] * 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = evaluate_predictions(labels, probabilities, np.arange(210), SEVEN_CLASS_TASK, {"0.5": 0.5}, samples=100)
    multi = result["multiclass"]
    assert multi["macro_roc_auc"]["value"] == pytest.approx(
        metrics.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    assert multi["balanced_accuracy"]["value"] == pytest.approx(
        metrics.balanced_accuracy_score(labels, probabilities.argmax(axis=1)))
    malignant = np.isin(labels, [0, 1, 4]).astype(int)
    score = probabilities[:, [0, 1, 4]].sum(axis=1)
    assert result["binary"]["roc_auc"]["value"] == pytest.approx(metrics.roc_auc_score(malignant, score))
    assert set(result["per_class"]) >= {"akiec", "mel", "nv", "macro avg"}
    assert np.array(result["class_confusion_matrix"]).sum() == 210


def test_expected_calibration_error_known_cases():
    assert expected_calibration_error(np.ones(10), np.full(10, 0.8)) == pytest.approx(0.2)
    truth = np.array([1] * 7 + [0] * 3)
    assert expected_calibration_error(truth, np.full(10, 0.7)) == pytest.approx(0.0)


def test_lesion_aggregation_takes_the_mean_per_lesion():
    table = pd.DataFrame({"lesion_id": ["L1", "L2", "L1"], "label": [1, 0, 1], "image_id": ["a", "b", "c"]})
    lesions, scores = aggregate_lesions(table, np.array([0.2, 0.9, 0.6]))
    assert list(lesions["lesion_id"]) == ["L1", "L2"] and list(lesions["label"]) == [1, 0]
    assert list(lesions["images"]) == [2, 1] and list(lesions["image_ids"]) == ["a;c", "b"]
    np.testing.assert_allclose(scores, [0.4, 0.9])


def test_rates_at_match_scikit_learn_and_are_nan_where_undefined():
    truth = np.array([0, 0, 1, 1, 1])
    score = np.array([0.1, 0.6, 0.4, 0.7, 0.9])
    rates = rates_at(truth, score, 0.5)
    predicted = (score >= 0.5).astype(int)
    assert rates["sensitivity"] == pytest.approx(metrics.recall_score(truth, predicted))
    assert rates["ppv"] == pytest.approx(metrics.precision_score(truth, predicted))
    assert rates["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(truth, predicted))
    only_benign = rates_at(np.zeros(3, int), np.array([0.1, 0.2, 0.9]), 0.5)
    assert np.isnan(only_benign["sensitivity"]) and only_benign["specificity"] == pytest.approx(2 / 3)
    assert only_benign["balanced_accuracy"] == pytest.approx(2 / 3)


def test_no_bootstrap_samples_give_values_without_intervals():
    rng = np.random.default_rng(0)
    labels, scores = rng.integers(0, 2, 50), rng.uniform(0, 1, 50)
    result = evaluate_predictions(labels, scores, np.arange(50), BINARY_TASK, {"0.5": 0.5}, samples=0)
    assert result["binary"]["roc_auc"]["ci95"] is None
    assert result["binary"]["roc_auc"]["value"] == pytest.approx(metrics.roc_auc_score(labels, scores))


def test_brier_score_known_case():
    assert brier_score(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx((0.04 + 0.16) / 2)
