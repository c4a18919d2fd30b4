"""Figures written by the scripts (matplotlib/seaborn, no display needed).

Each function returns a matplotlib Figure; :func:`save_figure` writes it atomically as PNG.
"""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from src.io_utils import atomic_path  # noqa: E402


def save_figure(figure: plt.Figure, path: Path) -> None:
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=110, bbox_inches="tight", format="png")
    plt.close(figure)


def figure_to_png(figure: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=90, bbox_inches="tight", format="png")
    plt.close(figure)
    return buffer.getvalue()


def confusion_matrix_figure(matrix: np.ndarray, names, title: str) -> plt.Figure:
    size = 3.2 + 0.45 * len(names)
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", cbar=False, square=True,
                xticklabels=names, yticklabels=names, ax=axis)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    return figure


def training_history_figure(phases: list[pd.DataFrame]) -> plt.Figure:
    """Loss, ROC-AUC, PR-AUC and learning rate over the epochs of both phases."""
    history = pd.concat([log.assign(phase=i + 1) for i, log in enumerate(phases) if len(log)],
                        ignore_index=True)
    panels = [("loss", "loss"), ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"),
              ("learning_rate", "learning rate")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for axis, (key, title) in zip(axes, panels):
        for column, style in ((key, "-"), (f"val_{key}", "--")):
            if column in history:
                axis.plot(history["epoch"] + 1, history[column], style, marker="o",
                          markersize=3, label=column)
        if len(phases) > 1 and len(phases[0]) and len(phases[1]):
            axis.axvline(phases[0]["epoch"].max() + 1.5, color="grey", lw=0.8, ls=":")
        if key == "learning_rate":
            axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=7)
    figure.suptitle("training history (dotted line: start of fine-tuning)", fontsize=10)
    figure.tight_layout()
    return figure


def roc_figure(false_positive_rate, true_positive_rate, auc: float,
               points: dict[str, tuple[float, float]]) -> plt.Figure:
    """ROC curve with named operating points (1 - specificity, sensitivity)."""
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(false_positive_rate, true_positive_rate, lw=1.5, label=f"ROC (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    for name, (specificity, sensitivity) in points.items():
        axis.scatter(1 - specificity, sensitivity, s=30, zorder=3, label=name)
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.legend(fontsize=7, loc="lower right")
    return figure


def threshold_figure(thresholds, sensitivity, specificity, chosen: float) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(thresholds, sensitivity, label="sensitivity")
    axis.plot(thresholds, specificity, label="specificity")
    axis.axvline(chosen, color="black", ls="--", lw=0.8, label=f"chosen {chosen:.3f}")
    axis.set_xlabel("threshold on the malignant score")
    axis.legend(fontsize=8)
    return figure


def reliability_figure(mean_predicted, fraction_positive, ece: float, title: str) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="perfect calibration")
    axis.plot(mean_predicted, fraction_positive, marker="o", label=f"model (ECE {ece:.3f})")
    axis.set_xlabel("mean predicted probability")
    axis.set_ylabel("observed frequency")
    axis.set_title(title)
    axis.legend(fontsize=8)
    return figure
