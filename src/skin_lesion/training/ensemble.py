"""An ensemble run: a new run folder whose model averages the probabilities of finished runs.

The members must share the label space and split file (so the validation split that calibrates
the ensemble and the test split that evaluates it are the ones each member was kept away from).
With one binary member the ensemble is binary, and its 7-class members join it through their
malignant score. The ensemble's model (``skin_lesion.models.ensemble``) is saved like a trained one,
and the steps that finish a training run give it validation probabilities, a calibration refitted
on validation and the out-of-distribution flag; its record lists the members.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from skin_lesion import layout
from skin_lesion.data.records import task_of_record
from skin_lesion.errors import ConfigError
from skin_lesion.io_utils import read_json, sha256_file, write_json_atomic
from skin_lesion.models.ensemble import build_ensemble
from skin_lesion.models.saved import load_for_prediction, save_model
from skin_lesion.tasks import Task
from skin_lesion.training.config import TrainConfig
from skin_lesion.training.devices import configure_devices
from skin_lesion.training.records import provenance
from skin_lesion.training.trainer import finish_model, load_training_data, model_info

log = logging.getLogger(__name__)

ARCHITECTURE = "ensemble"


@dataclass
class MemberRun:
    """A finished run offered as a member, with its record."""

    run: layout.RunLayout
    record: dict

    @classmethod
    def open(cls, run_dir: Path, flag: str = "--runs") -> "MemberRun":
        run = layout.open_run(Path(run_dir), flag=flag)
        record = read_json(run.config, "Training config")
        if record.get("status") != "completed":
            raise ConfigError(f"{flag} {run_dir}: that run has not completed; finish it or leave it out.")
        return cls(run, record)

    @property
    def task(self) -> Task:
        return task_of_record(self.record, str(self.run.config))

    @property
    def img_size(self) -> int:
        return int(self.record["settings"]["img_size"])

    def as_record(self, weight: float) -> dict:
        return {"run": str(self.run.root), "architecture": self.record["architecture"], "task": self.task.kind,
                "img_size": self.img_size, "uses_metadata": bool(self.record.get("metadata_encoding")),
                "weight": weight}

    def validation(self, task: Task):
        """The run's validation results as ``task`` reads them (a 7-class run's malignant score
        for a binary task)."""
        from skin_lesion.evaluation.selection import Validation

        validation = Validation.read(str(self.run.root), self.run.val_probs)
        if self.task == task:
            return validation
        return Validation(validation.run, self.task.malignant_of_labels(validation.labels),
                          self.task.malignant_score(validation.probabilities), validation.image_ids)


def ensemble_task(members: list[MemberRun], kind: str | None = None) -> Task:
    """The task ``kind`` over the members' label space; by default binary if any member is (its
    7-class members give their malignant score), else their task."""
    if kind:
        return Task(kind, members[0].task.label_space)
    return next((member.task for member in members if member.task.is_binary), members[0].task)


def check_members(members: list[MemberRun], flag: str = "--runs") -> None:
    """Refuse, in one line naming the run, members that cannot be averaged."""
    first = members[0]
    if len({member.run.root for member in members}) < 2:
        raise ConfigError(f"{flag}: an ensemble needs at least two different runs; {first.run.root} alone "
                          "is its own model.")
    for member in members[1:]:
        if member.task.label_space != first.task.label_space:
            raise ConfigError(f"{flag} {member.run.root}: its diagnoses ({member.task.label_space.name}: "
                              f"{', '.join(member.task.label_space.codes)}) differ from {first.run.root}'s; "
                              "ensemble runs of one label space.")
        if member.record["split_sha256"] != first.record["split_sha256"]:
            raise ConfigError(f"{flag} {member.run.root}: trained on another split file "
                              f"({member.record['split_file']}) than {first.run.root}; ensemble runs of one split.")


def check_encoding(members: list[MemberRun], encoding: dict | None, flag: str = "--runs") -> None:
    """Members with metadata must encode it as the ensemble's one metadata input does."""
    encoding = json.loads(json.dumps(encoding))  # as the members' records hold it (lists, not tuples)
    for member in members:
        if member.record.get("metadata_encoding") not in (None, encoding):
            raise ConfigError(f"{flag} {member.run.root}: encodes the patient metadata differently from "
                              "the split's training data now; leave it out or train it again.")


def ensemble_config(members: list[MemberRun], task: Task, outputs_dir: Path) -> TrainConfig:
    """The settings of the first member of the ensemble's task (its calibration method fits that
    task) at the largest member size, with metadata if any member uses it."""
    settings = next(member for member in members if member.task == task).record["settings"]
    return dataclasses.replace(TrainConfig(**settings), architecture=ARCHITECTURE, task=task.kind,
                               img_size=max(member.img_size for member in members),
                               use_metadata=any(member.record.get("metadata_encoding") for member in members),
                               outputs_dir=str(Path(outputs_dir).resolve()))


def describe_ensemble(config: TrainConfig, data, members: list[dict], selection: dict | None) -> dict:
    """The ensemble's ``training_config.json``: what later steps read from any run, and the members."""
    return {
        "architecture": ARCHITECTURE, **data.task.as_record(), "settings": config.as_dict(),
        "members": members, "selection": selection,
        "metadata_encoding": data.encoding.as_dict() if data.encoding else None,
        "dataset": data.provenance.as_dict(), "split_file": config.split_file,
        "split_sha256": sha256_file(Path(config.split_file)),
        "images": {"train": len(data.train.table), "val": len(data.val.table)},
        "devices": configure_devices("float32", None, False).describe(), "provenance": provenance(),
        "status": "running",
    }


def make_ensemble(run_dirs: list[Path], weights: list[float] | None, outputs_dir: Path,
                  selection: dict | None = None) -> layout.RunLayout:
    """Build, save and finish the ensemble of ``run_dirs`` (equal weights by default; of the task
    the ``selection`` chose them for, if any)."""
    flag = "--select-from" if selection else "--runs"
    members = [MemberRun.open(run_dir, flag) for run_dir in run_dirs]
    weights = list(weights or [1.0] * len(members))
    if len(weights) != len(members):
        raise ConfigError(f"--weights: {len(weights)} weight(s) for {len(members)} run(s); give one per run.")
    check_members(members, flag)
    task = ensemble_task(members, selection["task"] if selection else None)
    config = ensemble_config(members, task, outputs_dir)
    data = load_training_data(config, task)
    check_encoding(members, data.encoding.as_dict() if data.encoding else None, flag)
    run = layout.OutputsLayout(Path(outputs_dir)).new_run(ARCHITECTURE, data.task.kind)
    log.info("Ensemble run folder: %s", run.root)
    records = [member.as_record(weight / sum(weights)) for member, weight in zip(members, weights)]
    malignant = task.label_space.indices(task.label_space.malignant_codes)
    model = build_ensemble([load_for_prediction(member.run.best_model) for member in members], weights,
                           task.num_outputs, malignant)
    save_model(model, run.best_model, {**model_info(config, data), "members": records})
    description = describe_ensemble(config, data, records, selection)
    write_json_atomic(run.config, description)
    calibration, out_of_distribution = finish_model(run, config, data)
    description.update({"status": "completed", "finished": datetime.now().isoformat(timespec="seconds"),
                        "calibration": calibration["method"], "out_of_distribution": out_of_distribution})
    write_json_atomic(run.config, description)
    layout.OutputsLayout(Path(outputs_dir)).point_latest_at(run)
    return run


def select_members(run_dirs: list[Path], max_members: int) -> tuple[list[Path], list[float], dict]:
    """Greedy forward selection on the candidates' validation probabilities (the test split is
    never read): the runs chosen, their weights (times picked) and the selection record."""
    from skin_lesion.evaluation.selection import greedy_selection

    candidates = [MemberRun.open(run_dir, "--select-from") for run_dir in run_dirs]
    check_members(candidates, "--select-from")
    task = ensemble_task(candidates)
    selection = {**greedy_selection([candidate.validation(task) for candidate in candidates], max_members),
                 "task": task.kind}
    for step in selection["trace"]:
        log.info("Selection step %d: adding %s, validation score %.4f", step["step"], step["added"], step["score"])
    if len(selection["runs"]) < 2:
        raise ConfigError(f"--select-from: on validation no other candidate improves {selection['runs'][0]} "
                          f"({selection['metric']} {selection['trace'][-1]['score']:.4f}); use that run as it is, "
                          "or offer candidates that differ more (other sizes, architectures, tasks).")
    return [Path(run) for run in selection["runs"]], [float(w) for w in selection["weights"]], selection
