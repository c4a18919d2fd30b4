#!/usr/bin/env python
"""Train a skin-lesion classifier in two phases and write a complete run folder.

Phase 1 trains the head with the backbone frozen; phase 2 unfreezes the top backbone layers
(BatchNormalization stays frozen for pretrained backbones) at a lower learning rate. The run
goes to outputs/runs/<time>_<arch>_<task>/: models/<arch>_best.h5 (the best validation epoch),
training_config.json, run.log, val_probs.npz, calibration.json, logs/ (CSV per phase and
TensorBoard) and plots/training_history.png; outputs/latest points to it when it completes.

Settings come from --config FILE (JSON with the settings' names, e.g. configs/cpu_binary.json,
or a run's own training_config.json to train it again); flags given on the command line win.
--seeds 0 1 2 trains the same settings once per seed, one run folder each (compare_runs.py then
shows their mean and spread).
Watch it with: tensorboard --logdir outputs/runs
"""
from __future__ import annotations

from pathlib import Path

from skin_lesion import cli, layout
from skin_lesion.errors import ConfigError
from skin_lesion.training.config import TrainConfig, add_train_arguments, given_settings, one_per_seed


def build_parser():
    parser = cli.parser(__doc__)
    add_train_arguments(parser)
    parser.add_argument("--config", metavar="FILE",
                        help="JSON file of settings (names as above, with underscores)")
    parser.add_argument("--seeds", metavar="SEED", type=int, nargs="+",
                        help="train the settings once per seed, one run after the other (not with --seed)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted run with its own settings (no other settings allowed)")
    return parser


def checked_settings(args) -> list[TrainConfig] | None:
    """The settings of each run, one per seed (None when resuming), checked before TensorFlow
    starts so that a mistake is reported at once."""
    given = given_settings(args)
    if not args.resume:
        config = TrainConfig.from_file(args.config, given) if args.config else TrainConfig.from_sources({}, given)
        return one_per_seed(config.resolved(), args.seeds, given)
    layout.open_unfinished_run(Path(args.resume))
    if given or args.config or args.seeds:
        flags = ", ".join(["--" + name.replace("_", "-") for name in given] + ["--config"] * bool(args.config)
                          + ["--seeds"] * bool(args.seeds))
        raise ConfigError(
            f"--resume continues {args.resume} with the settings in its training_config.json; "
            f"it cannot take {flags}. To train with other settings, start a new run: "
            f"--config {Path(args.resume) / 'training_config.json'} plus your flags.")
    return None


def main(args) -> int:
    configs = checked_settings(args)
    cli.start_tensorflow(args.debug)
    from skin_lesion.training.trainer import resume, train_seeds

    if configs is None:
        resume(Path(args.resume))
    else:
        train_seeds(configs)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
