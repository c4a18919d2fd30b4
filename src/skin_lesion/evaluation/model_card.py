"""A model card per run, written from the run's own files (never hand-edited numbers).

The sections follow Mitchell et al., "Model Cards for Model Reporting" (FAT* 2019): model
details, intended use, factors, metrics, evaluation and training data, quantitative analyses,
ethical considerations and caveats. Every number comes from ``training_config.json``,
``threshold.json``, ``calibration.json``, ``test_metrics.json`` and ``test_predictions.csv``;
the text about the data comes from the run's record of what it learnt from (``dataset``: name,
source, licence, whether synthetic) and that data's sheet (``skin_lesion.data.datasets.data_sheet``).
A model of synthetic data says so at the top and beside its figures.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from skin_lesion.data.dataset import GROUP_NAMES, Provenance
from skin_lesion.data.datasets import data_sheet
from skin_lesion.data.datasets.registry import DataSheet
from skin_lesion.data.records import dataset_of, task_of_record
from skin_lesion.data.split import SPLITS, split_grouping
from skin_lesion.defaults import UNTUNED_THRESHOLD
from skin_lesion.evaluation.threshold import validation_rates
from skin_lesion.formatting import interval_text
from skin_lesion.io_utils import read_json, write_text_atomic
from skin_lesion.layout import RunLayout, split_paths
from skin_lesion.markdown import markdown_table
from skin_lesion.tasks import BINARY, CLASS_METRICS, SCREENING_METRICS, Task

INTENDED_USE = (
    "A research tool for studying automated classification of dermoscopic images of pigmented "
    "skin lesions: comparing methods, teaching, and exploring what a network attends to. "
    "**It is not a medical device and must not be used to diagnose, triage or reassure "
    "patients.** Out of scope: clinical (non-dermoscopic) photographs, lesions other than the "
    "{diagnoses}, children and skin types under-represented in the training data.")
SHORTCUTS = ("Age, sex and site differ by diagnosis (see `scripts/explore_data.py`), so a model may "
             "learn them as shortcuts")


@dataclass
class RunRecords:
    """The files of an evaluated run that the card is written from."""

    run: RunLayout
    config: dict
    metrics: dict
    threshold: dict | None
    calibration: dict
    predictions: pd.DataFrame
    external: list[dict]  # every external validation (external/<dataset>/metrics.json), by dataset

    @classmethod
    def read(cls, run: RunLayout) -> "RunRecords":
        optional = {path: read_json(path) if path.is_file() else None for path in (run.threshold, run.calibration)}
        return cls(run, read_json(run.config, "Training config"), read_json(run.test_metrics(), "Test metrics"),
                   optional[run.threshold], optional[run.calibration] or {}, pd.read_csv(run.test_predictions()),
                   [read_json(path, "External validation") for path in sorted(run.external_root.glob("*/metrics.json"))])

    @property
    def task(self) -> Task:
        return task_of_record(self.config, str(self.run.config))

    @property
    def dataset(self) -> Provenance:
        return dataset_of(self.config, str(self.run.config))

    @property
    def sheet(self) -> DataSheet:
        return data_sheet(self.dataset)

    @property
    def point(self) -> str:
        """The operating point reported: the tuned threshold, or the untuned one."""
        return "tuned" if "tuned" in self.metrics["thresholds"] else f"{UNTUNED_THRESHOLD}"

    @property
    def pretrained(self) -> bool:
        return self.config["settings"]["weights"] not in ("none", None)


def value_with_interval(entry: dict | None) -> str:
    """``0.912 (95 % CI 0.890–0.931)``; ``n/a`` where undefined."""
    if not entry or entry.get("value") is None:
        return "n/a"
    interval = entry.get("ci95")
    return f"{entry['value']:.3f}" + (f" ({interval_text(interval, 3)})" if interval else "")


def trained_on(task: Task) -> str:
    """``7 HAM10000 diagnoses (akiec, bcc, ...)``: what the model has seen."""
    space = task.label_space
    return f"{len(space.codes)} {space.name} diagnoses ({', '.join(space.codes)})"


def output_description(task: Task) -> str:
    """What the model outputs, naming the malignant diagnoses."""
    malignant = task.label_space.malignant_codes
    if task.is_binary:
        return f"probability of malignancy ({', '.join(malignant)})"
    return (f"probabilities of the {len(task.classes)} diagnoses; malignant score = "
            f"{' + '.join(malignant)}")


def details(records: RunRecords) -> str:
    config, settings = records.config, records.config["settings"]
    git = (config.get("provenance") or {}).get("git") or {}
    devices = config["devices"]
    hardware = f"{devices['cpu_count']} CPU core(s)" + (f", {len(devices['gpus'])} GPU(s)" if devices["gpus"] else "")
    rows = [
        ["architecture", f"{config['architecture']} "
                         f"({'ImageNet-pretrained' if records.pretrained else 'trained from scratch'})"],
        ["task", f"{records.task.kind}: {', '.join(records.task.classes)}"],
        ["input", f"RGB dermoscopic image, {settings['img_size']}x{settings['img_size']} pixels"
                  + (", with age, sex and lesion site" if config.get("metadata_encoding") else "")],
        ["output", output_description(records.task)],
        ["model file", f"`{records.run.best_model.relative_to(records.run.root)}` "
                       f"(best validation epoch, {config.get('best_epoch')})"],
        ["training", f"{config.get('epochs_completed')} epochs, {settings['schedule']} learning rate, "
                     f"batch {settings['batch_size']}, label smoothing {settings['label_smoothing']}, "
                     f"class weighting {'on' if settings['class_weighting'] else 'off'}; "
                     f"{config.get('training_seconds', 0) / 60:.0f} min on {hardware}"],
        ["code", f"git commit `{git.get('commit', 'unknown')[:12]}`"
                 + (" (with uncommitted changes)" if git.get("uncommitted_changes") else "")],
        ["training data", f"{records.dataset.name}, from {records.dataset.source}"
                          + ("; synthetic: generated images, not photographs" if records.dataset.synthetic else "")],
        ["licence", f"code MIT; data {records.dataset.licence}"],
    ]
    return "## Model details\n\n" + markdown_table(["", ""], rows)


def members_section(records: RunRecords) -> str:
    """An ensemble's members and how they were chosen ("" for a trained model)."""
    members = records.config.get("members")
    if not members:
        return ""
    selection = records.config.get("selection")
    chosen = (f"Chosen by {selection['method']} on {selection['metric']} ({selection['images']} images), "
              f"from {len(selection['candidates'])} candidate runs." if selection else "Chosen by hand.")
    task = records.config.get("task")
    tasks = [m.get("task", task) for m in members]  # records from before members' tasks could differ
    rows = [[f"`{Path(m['run']).name}`", m["architecture"], member_task, f"{m['img_size']}x{m['img_size']}",
             "yes" if m["uses_metadata"] else "no", f"{m['weight']:.3f}"] for m, member_task in zip(members, tasks)]
    collapsed = task == BINARY and any(member_task != task for member_task in tasks)
    return ("## Members\n\nThis model averages the probabilities of the runs below (one Keras model; each "
            "member sees the image resized to its own size"
            + ("; a multiclass member gives the sum of its malignant classes" if collapsed else "")
            + "); its calibration is refitted on validation. " + chosen + "\n\n"
            + markdown_table(["run", "architecture", "task", "input", "metadata", "weight"], rows)
            + comparison(records.metrics.get("ensemble_comparison")))


#: The figures an ensemble is compared on (``ensemble_comparison`` in test_metrics.json), named.
COMPARED_FIGURES = {"roc_auc": "ROC-AUC (malignant score)", "pr_auc": "PR-AUC (malignant score)",
                    "balanced_accuracy": "balanced accuracy", "macro_roc_auc": "macro ROC-AUC"}


def comparison(compared: dict | None) -> str:
    """The ensemble against its best member and the members' mean on the test split."""
    if not compared:
        return ""
    keys = [key for key in COMPARED_FIGURES if f"{key}/ensemble" in compared["figures"]]
    rows = [[COMPARED_FIGURES[key], *(value_with_interval(compared["figures"][f"{key}/{part}"]) for part in
                                      ("ensemble", "best_member", "members_mean", "gain_over_best", "gain_over_mean"))]
            for key in keys]
    return (f"\n\nOn the {compared['images']} test images all of them scored (paired bootstrap intervals, "
            "the same lesions resampled for all; the best member is the one best on these test images for "
            "each figure, which favours it):\n\n"
            + markdown_table(["", "ensemble", "best member", "members' mean", "gain over best", "gain over mean"], rows))


def metrics_section(records: RunRecords) -> str:
    metrics, point = records.metrics, records.point
    binary = metrics[SCREENING_METRICS]
    where = (f"the threshold tuned on validation data for {records.threshold['target_sensitivity']:.0%} "
             f"sensitivity ({metrics['thresholds']['tuned']:.3f})" if point == "tuned"
             else f"the untuned threshold {UNTUNED_THRESHOLD}")
    rows = [[name, value_with_interval(binary.get(key))] for name, key in (
        ("ROC-AUC", "roc_auc"), ("PR-AUC (average precision)", "pr_auc"),
        ("sensitivity", f"sensitivity@{point}"), ("specificity", f"specificity@{point}"),
        ("PPV", f"ppv@{point}"), ("NPV", f"npv@{point}"), ("balanced accuracy", f"balanced_accuracy@{point}"))]
    if not records.task.is_binary:
        rows += [[f"{len(records.task.classes)}-class {name}", value_with_interval(metrics[CLASS_METRICS][key])]
                 for name, key in (("balanced accuracy", "balanced_accuracy"), ("macro ROC-AUC", "macro_roc_auc"))]
    quality = metrics["calibration"]
    calibration_rows = [[name, f"{quality[key]['malignant_score_ece']:.3f}", f"{quality[key]['malignant_score_brier']:.3f}"]
                        for name, key in (("before calibration", "uncalibrated"), ("after calibration", "calibrated"))]
    return "\n\n".join([
        "## Metrics",
        *([f"**{records.dataset.caveat()}**"] if records.dataset.synthetic else []),
        f"On the held-out test split ({metrics['images']} images of {metrics['lesions']} lesions; "
        f"{metrics['cases']} {metrics['level']}s scored, {metrics['malignant']} malignant), at {where}. "
        f"Intervals resample {GROUP_NAMES[split_grouping(Path(metrics['split_file']))]}s "
        f"({metrics['bootstrap_samples']} bootstrap samples).",
        markdown_table(["metric", "test value"], rows),
        *tuning_note(records),
        f"### Calibration\n\nMethod: {records.calibration.get('method', 'none')}, fitted on the validation "
        "split. The malignant score on the test split:",
        markdown_table(["", "expected calibration error", "Brier score"], calibration_rows),
    ])


def tuning_note(records: RunRecords) -> list[str]:
    """What the tuned threshold rests on, since a threshold chosen on few validation images can
    reach its target there by luck; nothing for an untuned run."""
    if records.point != "tuned":
        return []
    return [f"The threshold was chosen on the validation split, where it reached "
            f"{validation_rates(records.threshold)} (Wilson score intervals)."]


def data_sections(records: RunRecords) -> str:
    config, metrics = records.config, records.metrics
    split_file = Path(config["split_file"])
    summary_file = split_paths(split_file.parent)[1]
    parts = ["## Evaluation data",
             f"The test split of `{metrics['split_file']}`: lesions never seen in training or threshold "
             "tuning, read once." + (f" {len(metrics['excluded_images'])} undecodable image(s) excluded."
                                     if metrics["excluded_images"] else ""),
             "## Training data",
             f"Split file `{split_file}` (SHA-256 `{config['split_sha256'][:16]}…`), lesion-level: all "
             "images of a lesion are in one split, stratified by diagnosis."]
    if summary_file.is_file():
        summary = read_json(summary_file, "Split summary")
        parts.append(markdown_table(["split", "images", "lesions", "malignant"],
                                    [[name, part["images"], part["lesions"], f"{100 * part['positive_ratio']:.1f} %"]
                                     for name, part in ((name, summary["splits"][name]) for name in SPLITS)]))
        if summary.get("train_only_diagnoses"):
            parts.append(f"Kept in training only (too few lesions): {', '.join(summary['train_only_diagnoses'])}.")
    if config.get("class_weights"):
        weights = config["class_weights"].items()
        parts.append("Class weights: " + ", ".join(f"{name} {weight:.3f}" for name, weight in weights) + ".")
    return "\n\n".join(parts)


def external_section(records: RunRecords) -> str:
    """One row per other dataset the model was scored on, or what is missing."""
    results = records.external
    if not results:
        return ("## External validation\n\nNone yet: score another dataset with `scripts/05_evaluate.py "
                "--data-dir OTHER` before claiming the figures hold elsewhere.")
    point = records.point
    rows = [[result["dataset"], f"{result['images']} images, {result['groups']} {GROUP_NAMES[result['grouped_by']]}s",
             result["malignant"], value_with_interval(result[SCREENING_METRICS]["roc_auc"]),
             value_with_interval(result[SCREENING_METRICS].get(f"sensitivity@{point}")),
             value_with_interval(result[SCREENING_METRICS].get(f"specificity@{point}")),
             ood_share(result), ", ".join(result["unknown_to_model"]) or "—"] for result in results]
    return "\n\n".join([
        "## External validation",
        f"Every image of another dataset, none seen in training or tuning; diagnoses read in the model's "
        f"classes through the synonym table, unknown ones by their dataset's rule. Rates at the {point} "
        "threshold; intervals resample the dataset's lesions or patients.",
        markdown_table(["dataset", "scored", "malignant", "ROC-AUC", "sensitivity", "specificity",
                        "out of distribution", "labels the model has no class for (read by their own rule)"],
                       rows)])


def ood_share(result: dict) -> str:
    """``12 (0.8 %)`` images flagged out of distribution; ``—`` for models without the flag."""
    flagged = result.get("out_of_distribution")
    return "—" if flagged is None else f"{flagged} ({100 * flagged / max(result['images'], 1):.1f} %)"


def per_diagnosis_rates(records: RunRecords) -> list[list]:
    """For each diagnosis in the test split: images, and the share called malignant (the
    sensitivity for malignant diagnoses, 1 - specificity for benign ones)."""
    predictions, column = records.predictions, f"malignant@{records.point}"
    space = records.task.label_space
    rows = []
    for dx in space.codes:
        part = predictions[predictions["dx"] == dx]
        meaning = "detected (sensitivity)" if dx in space.malignant else "false alarms (1 - specificity)"
        rows.append([dx, space.display_name(dx), len(part),
                     f"{part[column].mean():.3f}" if len(part) else "n/a", meaning if len(part) else "no test images"])
    return rows


def analyses_section(records: RunRecords) -> str:
    parts = ["## Quantitative analyses: where it fails",
             "Share of each diagnosis' test images called malignant at the operating point:",
             markdown_table(["dx", "diagnosis", "test images", "called malignant", "meaning"],
                            per_diagnosis_rates(records))]
    if "per_class" in records.metrics:
        report = records.metrics["per_class"]
        decision = " (the class most probable relative to its prevalence)" if records.calibration.get("class_prior") else ""
        parts += [f"Per-class results of the top class{decision}:",
                  markdown_table(["dx", "precision", "recall", "F1", "test images"],
                                 [[dx, f"{report[dx]['precision']:.3f}", f"{report[dx]['recall']:.3f}",
                                   f"{report[dx]['f1-score']:.3f}", int(report[dx]["support"])]
                                  for dx in records.task.classes])]
    return "\n\n".join(parts)


def caveats(records: RunRecords) -> str:
    space, sheet = records.task.label_space, records.sheet
    imbalance = f" ({sheet.imbalance})" if sheet.imbalance else ""
    detected = [row for row in per_diagnosis_rates(records) if row[0] in space.malignant and row[3] != "n/a"]
    weakest = min(detected, key=lambda row: float(row[3]), default=None)
    lines = [
        f"The classes are imbalanced{imbalance}; class weights and calibration correct the scores on "
        "average, not for every subgroup.",
        (f"Of the malignant diagnoses, {weakest[0]} ({space.display_name(weakest[0])}) is detected least "
         f"often ({weakest[3]}): missed cancers are the costliest error." if weakest
         else "The test split has no malignant images to analyse."),
        (f"The network was trained from scratch on {records.config['images']['train']:,} images; "
         "ImageNet-pretrained backbones are expected to do better." if not records.pretrained
         else "The backbone starts from ImageNet weights, learned on natural photographs, not skin."),
        ("Test figures come from one split of one dataset; an external test set (other hospitals, "
         "devices, populations) is needed before any claim of generality." if not records.external
         else "External results (above) cover only the datasets listed; other hospitals, devices and "
              "populations remain untested."),
        "Grad-CAM maps (`scripts/07_explain.py`) show where the network looked, not why; they are "
        "coarse at low resolution.",
    ]
    return "## Ethical considerations and caveats\n\n" + "\n".join(f"* {line}" for line in lines)


def ood_section(records: RunRecords) -> str:
    """How the model says an image is unlike its training data, and how often it does."""
    record = records.config.get("out_of_distribution")
    if not record:
        return ("## Out-of-distribution flag\n\nNone: this model was trained before the flag existed, so "
                "it scores any picture, a photograph of anything or a blank frame, as if it were a lesion.")
    test = records.metrics.get("out_of_distribution") or {}
    checks = record["pixel_checks"]
    rows = [["training split (fitted on)", f"{100 * record['flagged']['train']:.1f} %"],
            ["validation split (threshold chosen on)", f"{100 * record['flagged']['val']:.1f} %"],
            *([["test split", f"{test['flagged']} of {test['images']} ({100 * test['share']:.1f} %)"]] if test else [])]
    return "\n\n".join([
        "## Out-of-distribution flag",
        f"Method: {record['method']}. An image is flagged, and given no verdict, when its feature distance "
        f"exceeds {record['threshold']:.2f} (chosen so that about {100 * record['target_validation_flagged']:.0f} % "
        f"of validation images are flagged), or when it is under {checks['min_side']} pixels a side, nearly "
        "uniform, badly exposed or nearly without colour. `scripts/06_infer.py`, `scripts/07_explain.py` and "
        "the web app show the flag; `scripts/bench_ood.py` measures it on photographs and constructed "
        "non-images. A flag says the image is unusual, not that it is not a lesion; its absence does not "
        "make the score trustworthy for lesions unlike the training population.",
        markdown_table(["images", "flagged"], rows)])


def citation(dataset: Provenance) -> str:
    """How to cite the data, or why there is nothing to cite."""
    if dataset.citation:
        return dataset.citation
    if dataset.synthetic:
        return f"Nothing to cite for the data: {dataset.name} is generated by {dataset.source}."
    return f"Cite {dataset.name} as its authors ask."


def model_card(run: RunLayout) -> str:
    """The Markdown model card of an evaluated run."""
    records = RunRecords.read(run)
    uses_metadata = bool(records.config.get("metadata_encoding"))
    return "\n\n".join([
        f"# Model card: {run.root.name}",
        f"Generated {date.today().isoformat()} by `scripts/05_evaluate.py` from the run's files; "
        "regenerate it rather than edit it.",
        *([f"> **Synthetic data.** {records.dataset.caveat()}"] if records.dataset.synthetic else []),
        details(records),
        *([members_section(records)] if records.config.get("members") else []),
        "## Intended use\n\n" + INTENDED_USE.format(diagnoses=trained_on(records.task)),
        "## Factors\n\n" + records.sheet.factors + " " + SHORTCUTS
        + (": this model takes them as inputs." if uses_metadata else "."),
        metrics_section(records),
        data_sections(records),
        external_section(records),
        ood_section(records),
        analyses_section(records),
        caveats(records),
        "## Citation\n\n" + citation(records.dataset),
    ]) + "\n"


def write_model_card(run: RunLayout) -> Path:
    write_text_atomic(run.model_card, model_card(run))
    return run.model_card
