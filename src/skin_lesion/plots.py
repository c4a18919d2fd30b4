"""Figures written by the scripts (matplotlib/seaborn, no display needed).

Each function returns a matplotlib Figure with a title and labelled axes; :func:`save_figure`
writes it atomically as PNG.
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
from matplotlib.cm import ScalarMappable  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402

from skin_lesion.io_utils import atomic_path  # noqa: E402


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
    """Counts, and beside them the rows normalised (each true class sums to 1)."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = 3.0 + 0.45 * len(names)
    figure, axes = plt.subplots(1, 2, figsize=(2 * size + 0.6, size * 0.9))
    for axis, values, fmt, what in ((axes[0], matrix, "d", "counts"),
                                    (axes[1], normalised, ".2f", "share of each true class")):
        sns.heatmap(values, annot=True, fmt=fmt, cmap="Blues", cbar=False, square=True,
                    xticklabels=names, yticklabels=names, ax=axis,
                    vmin=0, vmax=None if fmt == "d" else 1)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(what, fontsize=9)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    return figure


def training_history_figure(history: pd.DataFrame, best_epoch: int, monitor: str) -> plt.Figure:
    """Loss, ROC-AUC, PR-AUC and learning rate per epoch (both phases, epochs from 1), with
    the start of fine-tuning and the best epoch marked."""
    panels = [("loss", "loss"), ("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"),
              ("learning_rate", "learning rate")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    phase2 = history.loc[history["phase"] == 2, "epoch"]
    for axis, (key, title) in zip(axes, panels):
        for column, style, label in ((key, "-", "training"), (f"val_{key}", "--", "validation")):
            if column in history and history[column].notna().any():
                axis.plot(history["epoch"], history[column], style, marker="o", markersize=3,
                          label=label if key != "learning_rate" else None)
        if len(phase2) and (history["phase"] == 1).any():
            axis.axvline(phase2.min() - 0.5, color="grey", lw=0.8, ls=":", label="fine-tuning starts")
        axis.axvline(best_epoch, color="tab:red", lw=0.8, ls="--",
                     label=f"best epoch ({best_epoch}, by {monitor})")
        if key == "learning_rate":
            axis.set_yscale("log")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.set_ylabel(title)
        axis.legend(fontsize=7)
    figure.suptitle("Training history", fontsize=11)
    figure.tight_layout()
    return figure


def roc_figure(false_positive_rate, true_positive_rate, auc: float,
               points: dict[str, tuple[float, float]], title: str) -> plt.Figure:
    """ROC curve with named operating points (specificity, sensitivity)."""
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(false_positive_rate, true_positive_rate, lw=1.5, label=f"ROC (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="chance")
    for name, (specificity, sensitivity) in points.items():
        axis.scatter(1 - specificity, sensitivity, s=30, zorder=3,
                     label=f"{name}: sens {sensitivity:.2f}, spec {specificity:.2f}")
    axis.set_xlabel("1 - specificity (false positive rate)")
    axis.set_ylabel("sensitivity (true positive rate)")
    axis.set_title(title)
    axis.legend(fontsize=7, loc="lower right")
    return figure


def precision_recall_figure(recall, precision, average_precision: float, prevalence: float,
                            points: dict[str, tuple[float, float]], title: str) -> plt.Figure:
    """Precision-recall curve with the prevalence baseline and named operating points
    (sensitivity, PPV)."""
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(recall, precision, lw=1.5, label=f"PR curve (AP {average_precision:.3f})")
    axis.axhline(prevalence, color="grey", lw=0.8, ls=":", label=f"prevalence {prevalence:.3f}")
    for name, (sensitivity, ppv) in points.items():
        axis.scatter(sensitivity, ppv, s=30, zorder=3, label=f"{name}: sens {sensitivity:.2f}, PPV {ppv:.2f}")
    axis.set_xlabel("recall (sensitivity)")
    axis.set_ylabel("precision (PPV)")
    axis.set_xlim(0, 1.01)
    axis.set_ylim(0, 1.01)
    axis.set_title(title)
    axis.legend(fontsize=7, loc="lower left")
    return figure


def per_class_roc_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]],
                         title: str) -> plt.Figure:
    """One-vs-rest ROC curve per class: name -> (false positive rate, true positive rate, AUC)."""
    figure, axis = plt.subplots(figsize=(5.5, 5.5))
    for name, (false_positive_rate, true_positive_rate, auc) in curves.items():
        axis.plot(false_positive_rate, true_positive_rate, lw=1.2, label=f"{name} (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="chance")
    axis.set_xlabel("1 - specificity (false positive rate)")
    axis.set_ylabel("sensitivity (true positive rate)")
    axis.set_title(title)
    axis.legend(fontsize=7, loc="lower right")
    return figure


def score_histogram_figure(scores: np.ndarray, groups: np.ndarray, thresholds: dict[str, float],
                           title: str, xlabel: str = "malignant score") -> plt.Figure:
    """Images per score bin for each true class, with the thresholds marked: counts, not
    densities, so a bar of one image looks like one image."""
    frame = pd.DataFrame({"score": scores, "true class": groups})
    figure, axis = plt.subplots(figsize=(6.5, 4))
    sns.histplot(frame, x="score", hue="true class", bins=np.linspace(0, 1, 41), stat="count",
                 element="step", ax=axis)
    for (name, threshold), style in zip(thresholds.items(), ("--", ":", "-.")):
        label = f"tuned threshold {threshold:.3f}" if name == "tuned" else f"threshold {threshold:.3f}"
        axis.axvline(threshold, color="black", lw=0.9, ls=style, label=label)
    handles, labels = axis.get_legend_handles_labels()
    legend = axis.get_legend()
    if legend is not None:
        handles = legend.legend_handles + handles
        labels = [text.get_text() for text in legend.get_texts()] + labels
    axis.legend(handles, labels, fontsize=7)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("images")
    axis.set_title(title)
    return figure


def threshold_figure(thresholds, sensitivity, specificity, chosen: float, target: float) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(thresholds, sensitivity, label="sensitivity")
    axis.plot(thresholds, specificity, label="specificity")
    axis.axhline(target, color="grey", lw=0.8, ls=":", label=f"target sensitivity {target:.2f}")
    axis.axvline(chosen, color="black", ls="--", lw=0.8, label=f"chosen threshold {chosen:.3f}")
    axis.set_xlabel("threshold on the malignant score")
    axis.set_ylabel("rate on the validation split")
    axis.set_title("Sensitivity and specificity by threshold (validation)")
    axis.legend(fontsize=8)
    return figure


def reliability_figure(curves: dict[str, tuple[pd.DataFrame, float]], title: str) -> plt.Figure:
    """Reliability diagram over the bins of ``metrics.calibration_bins``: name -> (bins, ECE).

    Above, each bin's observed frequency at its mean predicted probability; an empty bin breaks
    the line (a line across it would show values nobody observed). Below, the images per bin:
    a point of three images is not a point of three hundred.
    """
    figure, (axis, counts) = plt.subplots(2, 1, figsize=(5, 6.6), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1.2]})
    axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="perfect calibration")
    for index, (name, (bins, ece)) in enumerate(curves.items()):
        line, = axis.plot(bins["mean_confidence"], bins["observed"], marker="o", label=f"{name} (ECE {ece:.3f})")
        width = (bins["upper"] - bins["lower"]) / len(curves)
        filled = bins["images"] > 0
        bars = counts.bar((bins["lower"] + index * width)[filled], bins["images"][filled], width=width[filled],
                          align="edge", color=line.get_color(), alpha=0.8, label=name)
        counts.bar_label(bars, fontsize=6, padding=1)
    axis.set_ylabel("observed frequency of malignancy")
    axis.set_title(title)
    axis.legend(fontsize=8)
    counts.set_xlabel("malignant score (points: mean of the bin; bars: the bin)")
    counts.set_ylabel("images per bin")
    counts.margins(y=0.25)
    figure.tight_layout()
    return figure


def explanation_figure(rows: list[tuple[np.ndarray, np.ndarray, str]], title: str,
                       heat_colours: np.ndarray) -> plt.Figure:
    """Rows of (original image | heatmap overlay | colour bar), each with its caption above it.

    ``heat_colours`` are the overlay's colours for heat 0 ... 1 (RGB rows): the bar reads the
    colours, which without it say nothing about how strong the evidence is.
    """
    figure, axes = plt.subplots(len(rows), 2, figsize=(7.0, 3.35 * len(rows)), squeeze=False)
    scale = ScalarMappable(Normalize(0, 1), ListedColormap(heat_colours))
    for (original, blended, caption), (left, right) in zip(rows, axes):
        left.imshow(original)
        right.imshow(blended)
        left.set_title(caption, fontsize=8, loc="left")
        for axis, label in ((left, "image"), (right, "where the model looked")):
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_xlabel(label, fontsize=8)
        bar = figure.colorbar(scale, ax=right, fraction=0.046, pad=0.03)
        bar.set_label("importance (1 = this image's maximum)", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def message_figure(text: str, title: str) -> plt.Figure:
    """A panel that says why there is nothing to show, where a figure is expected."""
    figure, axis = plt.subplots(figsize=(6.4, 2.0))
    axis.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=10)
    axis.set_axis_off()
    figure.suptitle(title, fontsize=10)
    return figure
