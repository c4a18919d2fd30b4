#!/usr/bin/env python
"""Train a skin-lesion classifier in two phases and write a complete run folder.

Phase 1 trains the head with the backbone frozen; phase 2 unfreezes the top backbone layers
(BatchNormalization stays frozen) at a tenth of the learning rate. The run goes to
outputs/runs/<time>_<arch>_<task>/ (models/<arch>_best.h5 and _final.h5, training_config.json,
val_probs.npz, logs/ with CSV and TensorBoard, plots/training_history.png) and outputs/latest
points to it when it completes. Settings can come from --config FILE (JSON with the same names,
e.g. {"architecture": "resnet50", "epochs1": 5}); flags given on the command line win.
Watch it with: tensorboard --logdir outputs/runs
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from src import cli
from src.architectures import ARCHITECTURES
from src.devices import PRECISIONS
from src.labels import TASKS
from src.training import TrainConfig, resume, train


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, argument_default=argparse.SUPPRESS,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--architecture", "--model", dest="architecture", metavar="NAME",
        help=f"one of {', '.join(ARCHITECTURES)} or a Keras spelling such as EfficientNetB0 "
             f"(default: {defaults.architecture})")
    add("--task", choices=list(TASKS), help=f"(default: {defaults.task})")
    add("--weights", metavar="imagenet|none|PATH",
        help="backbone weights: ImageNet (downloaded by Keras), none (from scratch) or a local "
             f"weights file (default: {defaults.weights})")
    add("--split-file", metavar="CSV", help=f"split table from 02_prepare_split.py (default: {defaults.split_file})")
    add("--outputs-dir", metavar="DIR", help=f"runs/, cache/ and latest go here (default: {defaults.outputs_dir})")
    add("--epochs1", type=int, help=f"phase-1 epochs, frozen backbone (default: {defaults.epochs1})")
    add("--epochs2", type=int, help=f"phase-2 epochs, fine-tuning (default: {defaults.epochs2})")
    add("--batch-size", type=int, help=f"global batch size, split over devices (default: {defaults.batch_size})")
    add("--learning-rate", type=float, help="phase-1 learning rate (default: the architecture's)")
    add("--fine-tune-learning-rate", type=float, help="phase-2 learning rate (default: phase 1 / 10)")
    add("--unfreeze-layers", type=int, help="backbone layers unfrozen in phase 2, -1 for all (default: the architecture's)")
    add("--skip-phase1", action="store_true", help="fine-tune straight away")
    add("--skip-phase2", action="store_true", help="train the head only")
    add("--img-size", type=int, help="square input size (default: the architecture's native size)")
    add("--no-augmentation", dest="augmentation", action="store_false", help="train without augmentation")
    add("--seed", type=int, help=f"seed for Python, NumPy and TensorFlow (default: {defaults.seed})")
    add("--precision", choices=list(PRECISIONS),
        help="auto: mixed_float16 on GPU, float32 on CPU; float16/bfloat16: mixed precision (default: auto)")
    add("--dropout", type=float, help=f"(default: {defaults.dropout})")
    add("--dense-units", type=int, help=f"units of the dense layer of the head, 0 for none (default: {defaults.dense_units})")
    add("--early-stopping-patience", type=int, help=f"(default: {defaults.early_stopping_patience})")
    add("--config", metavar="FILE", help="JSON file of settings (names as above, with underscores)")
    add("--resume", metavar="RUN_DIR", help="continue an interrupted run with its own settings")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = vars(build_parser().parse_args(argv))
    if "resume" in arguments:
        resume(Path(arguments["resume"]))
        return 0
    config_file = arguments.pop("config", None)
    file_values = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"--config {config_file}: no such file.")
        try:
            file_values = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"--config {config_file} is not valid JSON: {error}") from error
    train(TrainConfig.from_sources(file_values, arguments, config_file or ""))
    return 0


if __name__ == "__main__":
    cli.run(main)
