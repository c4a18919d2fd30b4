"""Every setting of a training run, its default, and how the defaults are resolved.

``TrainConfig`` is what ``03_train.py`` builds from ``--config FILE`` and its flags and what
``training_config.json`` records under ``settings``; ``resolved()`` fills in the architecture's
defaults (``skin_lesion.models.architectures.resolve_defaults``), makes paths absolute and checks every
value once, before anything is loaded. This module imports no TensorFlow, so ``--help`` is fast.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from skin_lesion import layout
from skin_lesion.errors import ConfigError, MissingFileError
from skin_lesion.io_utils import read_json
from skin_lesion.models.architectures import get_architecture, resolve_defaults
from skin_lesion.models.calibration_methods import AUTO, CHOICES as CALIBRATIONS, check_fits
from skin_lesion.tasks import BINARY, KINDS

#: ``--precision`` values and the Keras dtype policy each stands for (``auto``: decided by
#: ``skin_lesion.training.devices.precision_policy`` from the hardware).
PRECISIONS = {"auto": None, "float32": "float32", "float16": "mixed_float16",
              "bfloat16": "mixed_bfloat16"}
SCHEDULES = ("plateau", "cosine")


#: JSON types accepted for each annotation of ``TrainConfig`` (an int is a valid float).
JSON_TYPES = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def check_types(values: dict, source: str) -> None:
    """Refuse settings of the wrong JSON type (``"epochs1": "5"``), naming them."""
    annotations = {item.name: str(item.type) for item in dataclasses.fields(TrainConfig)}
    for name, value in values.items():
        kinds = [kind.strip() for kind in annotations[name].split("|")]
        if value is None and "None" in kinds:
            continue
        allowed = tuple(t for kind in kinds for t in JSON_TYPES.get(kind, ()))
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ConfigError(f"{source}: setting {name} must be {' or '.join(kinds)}; "
                              f"got {json.dumps(value)}.")


#: The settings that are paths: ``resolved`` makes them absolute for the run.
PATH_SETTINGS = ("split_file", "outputs_dir", "cache_dir")


@dataclass
class TrainConfig:
    """Every setting of a training run; saved in ``training_config.json``.

    ``None`` for a learning rate, unfreeze count or image size means the architecture
    table's default (see ``resolved``).
    """

    architecture: str = "efficientnet_b0"
    task: str = BINARY
    weights: str = "imagenet"
    split_file: str = str(layout.OutputsLayout().split_file)
    outputs_dir: str = str(layout.OUTPUTS_DIR)
    cache_dir: str | None = None
    epochs1: int = 10
    epochs2: int = 20
    batch_size: int = 32
    learning_rate: float | None = None
    fine_tune_learning_rate: float | None = None
    unfreeze_layers: int | None = None
    skip_phase1: bool = False
    skip_phase2: bool = False
    img_size: int | None = None
    augmentation: bool = True
    seed: int = 42
    precision: str = "auto"
    dropout: float = 0.3
    dense_units: int = 256
    weight_decay: float = 1e-4
    schedule: str = "plateau"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    class_weighting: bool = True
    use_metadata: bool = False
    calibration: str = AUTO
    early_stopping_patience: int = 5
    lr_patience: int = 2
    deterministic: bool = False
    jit_compile: bool = False
    steps_per_execution: int = 1

    @classmethod
    def names(cls) -> list[str]:
        return [item.name for item in dataclasses.fields(cls)]

    @classmethod
    def from_sources(cls, file_values: dict, cli_values: dict, config_file: str = "") -> "TrainConfig":
        """Settings from a config file, overridden by those given on the command line.

        The file is either a plain settings object or a run's ``training_config.json``, whose
        ``settings`` are taken, so a recorded run can be trained again as it was. Keys starting
        with ``_`` are notes for people (a recipe's purpose and results) and are ignored.
        """
        if "settings" in file_values and isinstance(file_values["settings"], dict):
            file_values = file_values["settings"]
        file_values = {key: value for key, value in file_values.items() if not key.startswith("_")}
        unknown = sorted(set(file_values) - set(cls.names()))
        if unknown:
            raise ConfigError(f"Config file {config_file}: unknown setting(s) {', '.join(unknown)}; "
                              f"known settings: {', '.join(cls.names())}.")
        check_types(file_values, f"Config file {config_file}")
        return cls(**{**file_values, **cli_values})

    @classmethod
    def from_file(cls, path: Path, cli_values: dict | None = None) -> "TrainConfig":
        """:meth:`from_sources` with the values of a JSON file."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"--config {path}: no such file.")
        values = read_json(path, "--config")
        if not isinstance(values, dict):
            raise ConfigError(f"--config {path} must hold a JSON object of settings.")
        return cls.from_sources(values, cli_values or {}, str(path))

    def resolved(self) -> "TrainConfig":
        """A copy with the architecture's defaults filled in, absolute paths and checked values."""
        spec = get_architecture(self.architecture)
        defaults = resolve_defaults(spec, self.img_size, self.learning_rate,
                                    self.fine_tune_learning_rate, self.unfreeze_layers)
        outputs = layout.OutputsLayout(Path(self.outputs_dir).expanduser().resolve())
        values = dataclasses.replace(
            self, **defaults, architecture=spec.name,
            split_file=str(Path(self.split_file).expanduser().resolve()),
            outputs_dir=str(outputs.root),
            cache_dir=str(Path(self.cache_dir).expanduser().resolve() if self.cache_dir
                          else outputs.cache_dir),
        )
        values.check()
        return values

    def check(self) -> None:
        """Refuse values and combinations that cannot train, naming the flag."""
        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        if self.skip_phase1 and self.skip_phase2:
            raise ConfigError("--skip-phase1 and --skip-phase2 together leave nothing to train.")
        for phase, name in ((1, "epochs1"), (2, "epochs2")):
            if not getattr(self, f"skip_phase{phase}") and getattr(self, name) < 1:
                raise ConfigError(f"{flag(name)} must be at least 1 (use --skip-phase{phase} to leave "
                                  f"phase {phase} out); got {getattr(self, name)}.")
        for name in ("batch_size", "img_size", "steps_per_execution"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{flag(name)} must be at least 1; got {getattr(self, name)}.")
        for name in ("early_stopping_patience", "lr_patience", "dense_units", "warmup_epochs",
                     "weight_decay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{flag(name)} must be 0 or more; got {getattr(self, name)}.")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{flag(name)} must be positive; got {getattr(self, name)}.")
        if not 0 <= self.seed < 2**32:  # NumPy's range: refused now, not after other seeds trained
            raise ConfigError(f"--seed must be in [0, 2**32); got {self.seed}.")
        for name in ("dropout", "label_smoothing"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{flag(name)} must be in [0, 1); got {getattr(self, name)}.")
        choices = {"task": KINDS, "precision": tuple(PRECISIONS), "schedule": SCHEDULES,
                   "calibration": CALIBRATIONS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{flag(name)} must be one of {', '.join(allowed)}; "
                                  f"got {getattr(self, name)!r}.")
        check_fits(self.calibration, self.task)

    def total_epochs(self) -> int:
        """Epochs of the phases that run (early stopping may end a phase sooner)."""
        return (0 if self.skip_phase1 else self.epochs1) + (0 if self.skip_phase2 else self.epochs2)

    def phase_settings(self, phase: int) -> tuple[int, float]:
        """Epochs and peak learning rate of a phase."""
        if phase == 1:
            return self.epochs1, self.learning_rate
        return self.epochs2, self.fine_tune_learning_rate

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


#: Help text of every setting's flag (``--epochs1`` for ``epochs1``); defaults are appended.
HELP = {
    "architecture": "backbone from the architecture table, e.g. simple_cnn, vgg_scratch, "
                    "resnet50 or a Keras spelling such as EfficientNetB0",
    "task": "binary (benign vs malignant) or multiclass (one class per diagnosis of the split's "
            "label space)",
    "weights": "backbone weights: imagenet (downloaded by Keras), none (train from scratch) or "
               "the path of a local no-top weights file",
    "split_file": "split table written by 02_prepare_split.py",
    "outputs_dir": "folder for runs/, cache/ and the 'latest' link",
    "cache_dir": "folder for the decoded-image cache (default: <outputs-dir>/cache)",
    "epochs1": "phase-1 epochs: head only, backbone frozen",
    "epochs2": "phase-2 epochs: fine-tuning the top of the backbone",
    "batch_size": "global batch size, split over devices and workers",
    "learning_rate": "phase-1 (peak) learning rate (default: the architecture's)",
    "fine_tune_learning_rate": "phase-2 (peak) learning rate (default: the architecture's, "
                               "scaled with --learning-rate)",
    "unfreeze_layers": "backbone layers trained in phase 2, -1 for all (default: the architecture's)",
    "skip_phase1": "leave phase 1 out: fine-tune straight away (right for --weights none)",
    "skip_phase2": "leave phase 2 out: train the head only",
    "img_size": "square input size in pixels (default: the architecture's native size)",
    "augmentation": "random flips, rotation, shift, zoom, brightness and contrast in training",
    "seed": "seed for Python, NumPy, TensorFlow and the augmentation",
    "precision": "auto (mixed_float16 on GPUs, mixed_bfloat16 on CPUs with bfloat16 units that "
                 "ONEDNN_MAX_CPU_ISA leaves on, else float32), float32, float16 or bfloat16 (needs AVX-512 "
                 "on CPUs)",
    "dropout": "dropout rate of the head",
    "dense_units": "units of the head's dense layer, 0 for none",
    "weight_decay": "AdamW weight decay",
    "schedule": "learning rate: plateau (halved when validation PR-AUC stalls) or cosine "
                "(linear warm-up, then cosine decay over the phase)",
    "warmup_epochs": "warm-up length of the cosine schedule, in epochs",
    "label_smoothing": "label smoothing of the cross-entropy loss",
    "class_weighting": "weigh classes inversely to their training frequency",
    "use_metadata": "feed age, sex and lesion site to the model as a second input",
    "calibration": "map fitted on validation predictions after training: auto (platt for "
                   "binary, bias_temperature for several classes), platt, temperature, "
                   "bias_temperature or none",
    "early_stopping_patience": "epochs without validation PR-AUC improvement before a phase stops",
    "lr_patience": "epochs without improvement before the plateau schedule halves the rate",
    "deterministic": "bit-reproducible runs through TensorFlow's op determinism (slower)",
    "jit_compile": "compile the training step with XLA",
    "steps_per_execution": "training steps per call into the compiled function",
}
TYPES = {"int": int, "float": float, "str": str, "int | None": int, "float | None": float,
         "str | None": str}


def add_train_arguments(parser) -> None:
    """One flag per setting (``--batch-size`` for ``batch_size``); flags not given are left
    out of the parsed arguments, so a config file's values stand unless overridden."""
    defaults = TrainConfig()
    for item in dataclasses.fields(TrainConfig):
        name, default = item.name, getattr(defaults, item.name)
        shown = "" if default is None else f" (default: {default})"
        flags = ["--" + name.replace("_", "-")] + (["--model"] if name == "architecture" else [])
        if item.type == "bool":  # --flag and --no-flag, so a command line can undo a config file
            parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction,
                                default=argparse.SUPPRESS, help=f"{HELP[name]} (default: {default})")
        else:
            choices = {"task": KINDS, "precision": tuple(PRECISIONS),
                       "schedule": SCHEDULES, "calibration": CALIBRATIONS}.get(name)
            parser.add_argument(*flags, dest=name, type=TYPES[item.type], choices=choices,
                                default=argparse.SUPPRESS, metavar=None if choices else name.upper(),
                                help=HELP[name] + shown)


def given_settings(args) -> dict:
    """The settings given as flags in parsed arguments (the others were left out)."""
    return {name: value for name, value in vars(args).items() if name in TrainConfig.names()}


def one_per_seed(config: TrainConfig, seeds: list[int] | None, given: dict) -> list[TrainConfig]:
    """The settings once per seed of ``--seeds``, otherwise identical, since a recipe's figure is
    worth its spread over seeds; without ``--seeds``, the settings alone. ``given`` are the flags
    on the command line: ``--seed`` with ``--seeds`` is refused (a config file's seed is not)."""
    if seeds is None:
        return [config]
    if "seed" in given:
        raise ConfigError(f"--seeds and --seed together: give --seeds {' '.join(map(str, seeds))} "
                          f"alone, or --seed {given['seed']} alone for one run.")
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ConfigError(f"--seeds lists {', '.join(map(str, repeated))} more than once; "
                          "each seed trains one run.")
    configs = [dataclasses.replace(config, seed=seed) for seed in seeds]
    for each in configs:
        each.check()
    return configs
