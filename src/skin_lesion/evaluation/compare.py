"""One table of every training run under an outputs folder, for ``scripts/compare_runs.py``.

A run folder is any folder holding a ``training_config.json`` (``runs/<run>`` and the search
trials in ``search/<study>/runs/<run>``). Each becomes one row built from the files the steps
wrote: settings and status from the config, the best validation PR-AUC from the epoch logs,
test results from ``test_metrics.json`` (image level, no TTA) and the tuned threshold. A folder
that cannot be read completely is still listed, as ``broken: <why>``, so nothing is hidden.
Completed runs that differ only in their seed (same ``recipe``: settings and split) form seed
groups, summarised by the mean and spread of each figure in a second table.
``runs.csv`` keeps full-precision numbers (interval bounds in ``_low``/``_high`` columns);
the printed table and ``runs.md`` round them. This module imports no TensorFlow.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from skin_lesion import layout
from skin_lesion.data.records import dataset_of
from skin_lesion.errors import ConfigError, MissingFileError, UserError
from skin_lesion.io_utils import JSONReadError, read_json, write_text_atomic
from skin_lesion.markdown import markdown_table
from skin_lesion.tasks import CLASS_METRICS, SCREENING_METRICS

#: Top-level keys every training_config.json has (``describe_run``), and those ``finish_run`` adds.
REQUIRED_KEYS = ("architecture", "task", "settings", "status")
COMPLETED_KEYS = ("best_epoch", "best", "training_seconds", "epochs_completed")
#: Test metrics shown with their 95 % interval: (column, section, key in test_metrics.json).
TEST_METRICS = (("test_roc_auc", SCREENING_METRICS, "roc_auc"),
                ("test_pr_auc", SCREENING_METRICS, "pr_auc"),
                ("test_balanced_accuracy", CLASS_METRICS, "balanced_accuracy"),
                ("test_macro_roc_auc", CLASS_METRICS, "macro_roc_auc"))
COLUMNS = ["run", "study", "trial", "dataset", "data_dir", "architecture", "task", "img_size", "epochs_planned",
           "epochs_completed", "learning_rate_phase1", "learning_rate_phase2", "use_metadata", "seed", "recipe",
           "val_pr_auc", "best_epoch",
           *[f"{name}{end}" for name, _, _ in TEST_METRICS[:2] for end in ("", "_low", "_high")],
           "threshold",
           *[f"{name}{end}" for name, _, _ in TEST_METRICS[2:] for end in ("", "_low", "_high")],
           "training_seconds", "started", "status", "path"]
INTEGER_COLUMNS = ["trial", "img_size", "epochs_planned", "epochs_completed", "best_epoch", "seed"]
#: Sorted A-Z / low-high; every other column high-low (best metrics, newest runs first).
ASCENDING = {"run", "study", "trial", "dataset", "data_dir", "architecture", "task", "seed", "recipe", "status",
             "path"}
#: Settings that say where a run's files go, not what it learns: left out of its recipe.
PLACE_SETTINGS = ("outputs_dir", "cache_dir")
RUN_NAME_TIME = re.compile(r"^(\d{8}-\d{6})_")


def find_runs(outputs_dir: Path) -> list[Path]:
    """Every folder below ``outputs_dir`` holding a training_config.json, search trials included.

    Walking (rather than globbing ``runs/*``) finds trials wherever the search puts them; run
    folders are not searched further, hidden staging folders and the ``latest`` link are skipped.
    """
    outputs_dir = Path(outputs_dir)
    if not outputs_dir.is_dir():
        raise MissingFileError(f"No outputs folder at {outputs_dir}; pass --outputs-dir DIR, the "
                               "folder 03_train.py wrote its runs/ into.")
    found = []
    for folder, subfolders, files in os.walk(outputs_dir):
        if layout.CONFIG_FILE in files:
            found.append(Path(folder))
            subfolders.clear()
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
    return found


def load_json(path: Path) -> tuple[Any, str | None]:
    """(content, None), or (None, a short reason) so a bad file becomes a row's status, not a crash."""
    try:
        return read_json(path), None
    except JSONReadError as error:
        return None, f"{Path(path).name} {error.reason}"
    except MissingFileError:
        return None, f"{Path(path).name} missing"


def number(value: Any) -> float | None:
    """A JSON number as float; anything else (null, text, NaN) as None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def part(record: Any, key: str) -> dict:
    """``record[key]`` if it is a JSON object, else empty: hand-edited files may hold anything."""
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, dict) else {}


def string(value: Any) -> str | None:
    """Text as is; anything else as None (a column of mixed types could not be sorted)."""
    return value if isinstance(value, str) else None


def integer(value: Any) -> int | None:
    """A JSON whole number as int; anything else as None (so the column stays whole numbers)."""
    return int(value) if number(value) is not None and float(value).is_integer() else None


def read_history(run: layout.RunLayout, phases: list[int], required: bool) -> tuple[pd.DataFrame, list[str]]:
    """Both phases' epoch logs (with the phase) and what was wrong with them.

    A completed run must have the log of every phase it trained; a running one may not yet.
    """
    frames, problems = [], []
    for phase in phases:
        path = run.phase_log(phase)
        name = path.relative_to(run.root).as_posix()
        if not path.is_file():
            if required:
                problems.append(f"{name} missing")
            continue
        if not path.stat().st_size:
            continue
        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError) as error:  # parser, empty-data and decoding errors are ValueErrors
            problems.append(f"{name} unreadable ({error.__class__.__name__})")
            continue
        missing = [column for column in ("epoch", "seconds", "val_pr_auc") if column not in frame]
        if missing:
            problems.append(f"{name} lacks {', '.join(missing)}")
            continue
        frame = frame.assign(**{column: pd.to_numeric(frame[column], errors="coerce")
                                for column in ("epoch", "seconds", "val_pr_auc")}, phase=phase)
        if frame["epoch"].isna().any():
            problems.append(f"{name} has epochs that are not numbers")
            continue
        frames.append(frame)
    history = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return history, problems


def history_columns(history: pd.DataFrame) -> dict:
    """Best validation PR-AUC and its epoch (counted over both phases, from 1), epochs and
    seconds, by the trainer's rule (the best value; the last epoch if every value is NaN)."""
    if history.empty:
        return {}
    scores = history["val_pr_auc"]
    best = history.loc[scores.idxmax()] if scores.notna().any() else history.iloc[-1]
    return {"val_pr_auc": number(float(best["val_pr_auc"])), "best_epoch": int(best["epoch"]), "epochs_completed": len(history),
            "training_seconds": round(float(history["seconds"].sum()), 1)}


def recipe_of(config: dict) -> str | None:
    """A short digest of everything that decides what a run learns except its seed: its settings
    (the split file's path among them) and the split file's content, so that runs differing only
    in seed share it. None without settings."""
    settings = config.get("settings")
    if not isinstance(settings, dict):
        return None
    recipe = {key: value for key, value in settings.items() if key not in ("seed", *PLACE_SETTINGS)}
    text = json.dumps([recipe, config.get("split_sha256")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def is_ensemble(config: dict) -> bool:
    """An ensemble's record (scripts/ensemble.py) lists its members; it trained no epochs itself."""
    return "members" in config


def trained_phases(config: dict) -> list[int]:
    """The phases a run trained (none for an ensemble)."""
    settings = part(config, "settings")
    return [] if is_ensemble(config) else [phase for phase in (1, 2) if not settings.get(f"skip_phase{phase}")]


def config_columns(config: dict) -> tuple[dict, list[str]]:
    """Settings and record of a training_config.json, and the keys it lacks."""
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if config.get("status") == "completed" and not is_ensemble(config):
        missing += [key for key in COMPLETED_KEYS if key not in config]
    settings = part(config, "settings")
    trained = trained_phases(config)
    planned = [settings.get(f"epochs{phase}") for phase in trained]
    best, provenance, search = part(config, "best"), part(config, "provenance"), part(config, "search")
    metadata = settings.get("use_metadata")
    row = {"architecture": string(config.get("architecture")), "task": string(config.get("task")),
           "img_size": integer(settings.get("img_size")),
           "epochs_planned": sum(planned) if trained and all(integer(e) is not None for e in planned) else None,
           "learning_rate_phase1": number(settings.get("learning_rate")) if 1 in trained else None,
           "learning_rate_phase2": number(settings.get("fine_tune_learning_rate")) if 2 in trained else None,
           "use_metadata": metadata if isinstance(metadata, bool) else None,
           "seed": integer(settings.get("seed")), "recipe": recipe_of(config),
           "val_pr_auc": number(best.get("val_pr_auc")), "best_epoch": integer(config.get("best_epoch")),
           "epochs_completed": integer(config.get("epochs_completed")),
           "training_seconds": number(config.get("training_seconds")),
           "started": string(provenance.get("started")),
           "study": string(search.get("study")),
           "trial": integer(search.get("trial"))}
    problems = [f"training_config.json lacks {', '.join(missing)}"] if missing else []
    if "settings" in config and not isinstance(config["settings"], dict):
        problems.append("training_config.json: settings is not an object")
    return row, problems


def data_columns(config: dict, path: Path) -> dict:
    """Which dataset (its recorded name) and which folder of it the run learnt from, so a
    demo run on the sample is never mistaken for one on the real data."""
    columns: dict = {"dataset": None, "data_dir": None}
    split_file = string(config.get("split_file"))
    try:
        columns["dataset"] = dataset_of(config, str(path / layout.CONFIG_FILE)).name
        summary = layout.split_record(Path(split_file))[0] if split_file else {}
        columns["data_dir"] = string(summary.get("source_dir")) if isinstance(summary, dict) else None
    except UserError:  # a damaged record: the row's other columns say what they can
        pass
    return columns


def test_columns(metrics: Any) -> tuple[dict, list[str]]:
    """Test ROC-AUC and PR-AUC (and the multiclass summary) with intervals, and the tuned threshold."""
    if not part(metrics, SCREENING_METRICS):
        return {}, [f"test_metrics.json lacks {SCREENING_METRICS}"]
    row = {}
    for column, section, key in TEST_METRICS:
        entry = part(part(metrics, section), key)
        interval = entry.get("ci95")
        interval = interval if isinstance(interval, list) and len(interval) == 2 else [None, None]
        row.update({column: number(entry.get("value")),
                    f"{column}_low": number(interval[0]), f"{column}_high": number(interval[1])})
    row["threshold"] = number(part(metrics, "thresholds").get("tuned"))
    return row, []


def started_from_name(name: str) -> str | None:
    """The start time in a ``<time>_<arch>_<task>`` folder name, for runs whose config is unreadable."""
    match = RUN_NAME_TIME.match(name)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").isoformat(timespec="seconds")
    except ValueError:
        return None


def run_row(path: Path, outputs_dir: Path | None = None) -> dict:
    """One row of the table for one run folder; never raises for a broken or partial folder."""
    path = Path(path)
    relative = path.relative_to(outputs_dir) if outputs_dir else path
    row: dict = {column: None for column in COLUMNS}
    row.update(run=path.name, path=relative.as_posix(), started=started_from_name(path.name))
    parts = relative.parts
    if len(parts) >= 4 and parts[0] == "search" and parts[2] == "runs":
        row["study"] = parts[1]  # a trial whose config carries no search tag
    problems: list[str] = []
    config, problem = load_json(layout.RunLayout(path, "").config)
    if problem or not isinstance(config, dict):
        problems.append(problem or "training_config.json is not a JSON object")
        config = {}
    else:
        values, found = config_columns(config)
        row.update({key: value for key, value in values.items() if value is not None})
        row.update(data_columns(config, path))
        problems += found
    architecture = string(config.get("architecture")) or ""
    run = layout.RunLayout(path, architecture)
    status = config.get("status")
    completed = status == "completed"
    history, found = read_history(run, trained_phases(config), required=completed)
    problems += found
    row.update(history_columns(history))
    if status == "running" and history.empty and not found:
        row["epochs_completed"] = 0  # started, no epoch finished yet
    if completed and architecture and not run.best_model.is_file():
        problems.append(f"{run.best_model.relative_to(run.root).as_posix()} missing")
    if run.threshold.is_file():
        threshold, problem = load_json(run.threshold)
        problems += [problem] if problem else []
        row["threshold"] = number(threshold.get("threshold")) if isinstance(threshold, dict) else None
    if run.test_metrics().is_file():
        metrics, problem = load_json(run.test_metrics())
        values, found = test_columns(metrics) if not problem else ({}, [problem])
        row.update({key: value for key, value in values.items() if value is not None})
        problems += found
    if status not in (None, "completed", "running", "pruned"):
        problems.append(f"unknown status {status!r}")
    row["status"] = ("broken: " + "; ".join(problems) if problems
                     else status if status in ("completed", "pruned") else "running or interrupted")
    return row


def sort_runs(table: pd.DataFrame, key: str = "started") -> pd.DataFrame:
    """Sort by ``key`` (newest first among equals); missing values last."""
    if key not in COLUMNS:
        raise ConfigError(f"Cannot sort by {key!r}; choose one of: {', '.join(COLUMNS)}.")
    ordered = table.sort_values("path").sort_values("started", ascending=False, na_position="last",
                                                    kind="stable")
    if key != "started":
        ordered = ordered.sort_values(key, ascending=key in ASCENDING, na_position="last", kind="stable")
    return ordered.reset_index(drop=True)


def runs_table(outputs_dir: Path, sort: str = "started") -> pd.DataFrame:
    """Every run below ``outputs_dir``, one row each, in the columns ``COLUMNS``."""
    if sort not in COLUMNS:  # before reading anything
        sort_runs(pd.DataFrame(columns=COLUMNS), sort)
    rows = [run_row(path, Path(outputs_dir)) for path in find_runs(outputs_dir)]
    table = pd.DataFrame(rows, columns=COLUMNS).astype({column: "Int64" for column in INTEGER_COLUMNS})
    return sort_runs(table, sort)


def fixed(digits: int) -> Callable[[Any], str]:
    """A formatter for numbers with ``digits`` decimals; empty text for missing values."""
    return lambda value: "" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def with_interval(row: pd.Series, column: str) -> str:
    """``0.912 [0.890, 0.931]``, the value alone without an interval, empty when missing."""
    value, low, high = (row[column], row[f"{column}_low"], row[f"{column}_high"])
    if value is None or pd.isna(value):
        return ""
    three = fixed(3)
    return three(value) + ("" if pd.isna(low) or pd.isna(high) else f" [{three(low)}, {three(high)}]")


def duration(seconds: Any) -> str:
    """Seconds as ``45s``, ``12m05s`` or ``3h07m``."""
    if seconds is None or pd.isna(seconds):
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


def text(value: Any) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def number_text(value: Any, style: str = "g") -> str:
    return text(value) if not isinstance(value, (int, float)) or pd.isna(value) else f"{value:{style}}"


#: Headers of the figures a seed group summarises (runs.csv column -> header).
FIGURES = {"val_pr_auc": "val PR-AUC", "test_roc_auc": "test ROC-AUC", "test_pr_auc": "test PR-AUC",
           "test_balanced_accuracy": "bal. acc.", "test_macro_roc_auc": "macro AUC"}
CI = " [95% CI]"

#: Printed columns: header -> text of a row. Columns empty in every row are left out.
DISPLAY: dict[str, Callable[[pd.Series], str]] = {
    "run": lambda r: text(r["run"]),
    "study": lambda r: text(r["study"]),
    "trial": lambda r: number_text(r["trial"], ".0f"),
    "data": lambda r: " · ".join(part for part in (text(r["dataset"]), Path(text(r["data_dir"])).name) if part),
    "arch": lambda r: text(r["architecture"]),
    "task": lambda r: text(r["task"]),
    "img": lambda r: number_text(r["img_size"], ".0f"),
    "epochs": lambda r: ("" if pd.isna(r["epochs_completed"]) and pd.isna(r["epochs_planned"]) else
                         "/".join(number_text(r[column], ".0f") or "?"
                                  for column in ("epochs_completed", "epochs_planned"))),
    "lr1": lambda r: number_text(r["learning_rate_phase1"]),
    "lr2": lambda r: number_text(r["learning_rate_phase2"]),
    "meta": lambda r: {True: "yes", False: "no"}.get(r["use_metadata"], text(r["use_metadata"])),
    "seed": lambda r: number_text(r["seed"], ".0f"),
    "recipe": lambda r: text(r["recipe"]),
    FIGURES["val_pr_auc"]: lambda r: fixed(3)(r["val_pr_auc"]),
    "best epoch": lambda r: number_text(r["best_epoch"], ".0f"),
    FIGURES["test_roc_auc"] + CI: lambda r: with_interval(r, "test_roc_auc"),
    FIGURES["test_pr_auc"] + CI: lambda r: with_interval(r, "test_pr_auc"),
    "threshold": lambda r: fixed(3)(r["threshold"]),
    FIGURES["test_balanced_accuracy"] + CI: lambda r: with_interval(r, "test_balanced_accuracy"),
    FIGURES["test_macro_roc_auc"] + CI: lambda r: with_interval(r, "test_macro_roc_auc"),
    "time": lambda r: duration(r["training_seconds"]),
    "status": lambda r: text(r["status"]),
}


def rendered(table: pd.DataFrame, columns: dict[str, Callable[[pd.Series], str]],
             always: tuple[str, ...]) -> pd.DataFrame:
    """``table`` as text for people through ``columns``; columns without any value are dropped
    (but those in ``always``), so that a table of binary runs has no 7-class columns."""
    shown = pd.DataFrame({header: [render(row) for _, row in table.iterrows()]
                          for header, render in columns.items()}, columns=list(columns))
    keep = [header for header in shown if header in always or (shown[header] != "").any()]
    return shown[keep]


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table as rounded text for people."""
    return rendered(table, DISPLAY, ("run", "status"))


def markdown(frame: pd.DataFrame) -> str:
    """The printed table as Markdown."""
    return markdown_table(frame.columns, frame.itertuples(index=False)) + "\n"


#: Statistics of each figure over a seed group, as ``<figure>_<statistic>`` columns.
STATISTICS = ("n", "mean", "std", "min", "max")
#: Columns of run_groups.csv: the recipe, what it is, its runs, then each figure's statistics.
GROUP_COLUMNS = ["recipe", "dataset", "data_dir", "architecture", "task", "img_size", "epochs_planned",
                 "learning_rate_phase1", "learning_rate_phase2", "use_metadata", "runs", "seeds",
                 *[f"{figure}_{statistic}" for figure in FIGURES for statistic in STATISTICS], "paths"]
GROUPS_NOTE = ("Completed runs whose settings and split are the same except the seed (`recipe` in "
               "runs.csv): mean ± sample standard deviation (min–max) of each figure over the runs; "
               "n=K where only K of them have it.")


def spread(values: pd.Series) -> dict:
    """Count, mean, sample standard deviation (n - 1: the seeds are a sample of all seeds) and
    range of the values present; a figure missing from some runs is summarised over the others."""
    present = values.dropna().astype(float)
    return {"n": len(present), "mean": present.mean(), "std": present.std(ddof=1),
            "min": present.min(), "max": present.max()}


def group_row(runs: pd.DataFrame) -> dict:
    """One seed group: its recipe's description from its first run, its seeds and its spreads."""
    row = {column: runs.iloc[0][column] for column in GROUP_COLUMNS if column in COLUMNS}
    row.update(runs=len(runs), seeds=" ".join(str(seed) for seed in sorted(runs["seed"])),
               paths=";".join(runs["path"]))
    for figure in FIGURES:
        row.update({f"{figure}_{name}": value for name, value in spread(runs[figure]).items()})
    return row


def seed_groups(table: pd.DataFrame) -> pd.DataFrame:
    """The completed runs that differ only in seed, one row per recipe with at least two seeds
    (in the order of the runs table), so a difference between recipes can be set against the
    difference between seeds. Broken, running and pruned runs stay out: their figures are partial."""
    done = table[(table["status"] == "completed") & table["recipe"].notna() & table["seed"].notna()]
    rows = [group_row(runs) for _, runs in done.groupby("recipe", sort=False) if runs["seed"].nunique() >= 2]
    return pd.DataFrame(rows, columns=GROUP_COLUMNS)


def spread_text(row: pd.Series, figure: str) -> str:
    """``0.912 ± 0.012 (0.897–0.925)``, the value alone when one run has it, ``n=2`` appended when
    only some runs have it, empty when none has."""
    count = row[f"{figure}_n"]
    if not count:
        return ""
    three = fixed(3)
    shown = three(row[f"{figure}_mean"])
    if count >= 2:
        shown += f" ± {three(row[f'{figure}_std'])} ({three(row[f'{figure}_min'])}–{three(row[f'{figure}_max'])})"
    return shown + ("" if count == row["runs"] else f" n={count}")


#: Printed columns of the seed groups: the recipe as in the runs table, then each figure's spread.
GROUP_DISPLAY: dict[str, Callable[[pd.Series], str]] = {
    **{header: DISPLAY[header] for header in ("recipe", "data", "arch", "task", "img")},
    "epochs": lambda r: number_text(r["epochs_planned"], ".0f"),
    **{header: DISPLAY[header] for header in ("lr1", "lr2", "meta")},
    "runs": lambda r: number_text(r["runs"], "d"),
    "seeds": lambda r: text(r["seeds"]),
    **{header: (lambda r, figure=figure: spread_text(r, figure)) for figure, header in FIGURES.items()},
}


def display_groups(groups: pd.DataFrame) -> pd.DataFrame:
    """The seed groups as rounded text for people."""
    return rendered(groups, GROUP_DISPLAY, ("recipe", "seeds"))


def tables_text(table: pd.DataFrame, groups: pd.DataFrame) -> str:
    """The runs table in Markdown, followed by the seed groups when a recipe ran with two seeds."""
    runs = markdown(display_table(table))
    if groups.empty:
        return runs
    return f"{runs}\n## Seed groups\n\n{GROUPS_NOTE}\n\n{markdown(display_groups(groups))}"


def write_tables(table: pd.DataFrame, groups: pd.DataFrame, out_dir: Path) -> list[Path]:
    """``runs.csv`` (every column, full precision), ``run_groups.csv`` (the seed groups, header
    only when there are none, so a stale file never outlives its runs) and ``runs.md`` (the
    printed tables), atomically."""
    out_dir = Path(out_dir)
    written = {out_dir / "runs.csv": table.to_csv(index=False),
               out_dir / "run_groups.csv": groups.to_csv(index=False),
               out_dir / "runs.md": "# Training runs\n\n" + tables_text(table, groups)}
    for path, content in written.items():
        write_text_atomic(path, content)
    return list(written)
