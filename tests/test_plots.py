"""Figures a reviewer would accept: what each plot shows is what the numbers say (counts where
counts are meant, no line across an empty bin, the fine-tuning mark only when there was a
phase before it, a colour bar for every heatmap)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from skin_lesion.metrics import calibration_bins, expected_calibration_error
from skin_lesion.plots import (explanation_figure, reliability_figure, score_histogram_figure,
                               training_history_figure)


def history(phases: list[int]) -> pd.DataFrame:
    """Epoch logs of the given phases, epochs counted from 1 over both."""
    rows = [{"phase": phase, "loss": 1.0 / epoch, "val_loss": 1.2 / epoch, "pr_auc": 0.5, "val_pr_auc": 0.4,
             "roc_auc": 0.6, "val_roc_auc": 0.5, "learning_rate": 1e-3}
            for epoch, phase in enumerate(phases, start=1)]
    return pd.DataFrame(rows).assign(epoch=range(1, len(phases) + 1))


def legend_texts(figure: plt.Figure) -> list[str]:
    return [text.get_text() for axis in figure.axes if axis.get_legend() for text in axis.get_legend().get_texts()]


@pytest.mark.parametrize("phases, marked", [([1, 1, 2, 2, 2], True), ([2, 2, 2], False), ([1, 1], False)])
def test_fine_tuning_is_marked_only_after_a_phase_1(phases, marked):
    """A run trained with --skip-phase1 (phase 2 only) or --skip-phase2 has no phase change to mark."""
    figure = training_history_figure(history(phases), best_epoch=2, monitor="val_pr_auc")
    assert ("fine-tuning starts" in legend_texts(figure)) == marked
    plt.close(figure)


def test_reliability_diagram_counts_each_bin_and_breaks_at_empty_ones():
    truth = np.array([0] * 30 + [1] * 10 + [0, 1, 1])
    score = np.concatenate([np.full(30, 0.03), np.full(10, 0.97), [0.55, 0.58, 0.62]])
    bins = calibration_bins(truth, score, bins=10)
    assert bins["images"].tolist() == [30, 0, 0, 0, 0, 2, 1, 0, 0, 10]
    assert expected_calibration_error(truth, score, bins=10) == pytest.approx(
        ((bins["mean_confidence"] - bins["observed"]).abs() * bins["images"]).sum() / len(truth))
    figure = reliability_figure({"calibrated": (bins, 0.05)}, "test")
    curve_axis, count_axis = figure.axes
    line = next(line for line in curve_axis.get_lines() if line.get_label().startswith("calibrated"))
    observed = np.asarray(line.get_ydata(), float)
    assert np.isnan(observed[bins["images"] == 0]).all()  # matplotlib draws no segment through NaN
    assert np.allclose(observed[bins["images"] > 0], [0, 0.5, 1, 1])
    heights = [patch.get_height() for patch in count_axis.patches]
    assert heights == [30, 2, 1, 10]
    assert [text.get_text() for text in count_axis.texts] == ["30", "2", "1", "10"]
    plt.close(figure)


def test_score_histogram_counts_images():
    """Heights are images per bin (integers adding up to the class), not densities."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.beta(1, 6, 57), rng.beta(6, 1, 11)])
    groups = np.array(["benign"] * 57 + ["malignant"] * 11)
    figure = score_histogram_figure(scores, groups, {"tuned": 0.4}, "test")
    axis = figure.axes[0]
    heights = np.concatenate([path.vertices[:, 1] for collection in axis.collections
                              for path in collection.get_paths()])
    assert np.allclose(heights, np.round(heights)) and heights.max() == max(
        np.histogram(scores[groups == name], np.linspace(0, 1, 41))[0].max() for name in ("benign", "malignant"))
    assert axis.get_ylabel() == "images"
    plt.close(figure)


def test_every_heatmap_row_has_a_colour_bar_from_0_to_1_in_the_overlay_colours():
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, 256))[:, :3]
    image = np.zeros((16, 16, 3), np.uint8)
    figure = explanation_figure([(image, image, "first"), (image, image, "second")], "title", colours)
    bars = [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]
    assert len(figure.axes) == 6 and len(bars) == 2
    for bar in bars:
        assert bar.get_ylim() == (0, 1) and "maximum" in bar.get_ylabel()
        mappable = bar.collections[0] if bar.collections else bar.images[0]
        assert np.allclose(mappable.cmap(np.linspace(0, 1, 256))[:, :3], colours)
    plt.close(figure)
