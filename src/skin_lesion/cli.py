"""What every script shares: its parser, a quiet start, logging, and how errors are shown.

Scripts build their parser from light modules only and import the rest inside ``main``, so
``--help`` answers at once, without loading TensorFlow. Errors a user can fix
(``skin_lesion.errors.UserError``) become one line that says what to do (exit code 2); any other
exception is a bug and keeps its traceback. ``--debug`` shows tracebacks for every error,
debug messages and what TensorFlow printed while it started.
"""
from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn

from skin_lesion import layout
from skin_lesion.errors import ConfigError, MissingFileError, UserError
from skin_lesion.io_utils import stderr_captured

log = logging.getLogger(__name__)


class ConsoleFormatter(logging.Formatter):
    """Information as plain lines; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


class HideLegacyH5Notice(logging.Filter):
    """Keras calls ``.h5`` legacy on every save; it is this project's portable model format."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HDF5 file via `model.save()`" not in record.getMessage()


def setup_logging(debug: bool = False) -> None:
    """Log to stderr through one handler; Python warnings go the same way."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter("%(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.captureWarnings(True)
    logging.getLogger("absl").addFilter(HideLegacyH5Notice())
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices and the like
    if debug:
        logging.getLogger("skin_lesion").setLevel(logging.DEBUG)


def start_tensorflow(debug: bool = False) -> None:
    """Import TensorFlow and probe its devices without the start-up noise. Its C++ log stays off
    the console (level 3: errors too, such as the decoder's "Premature end of JPEG data", which
    the steps report in their own words) unless ``debug``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if debug else "3")
    with stderr_captured() as capture:
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # probes CUDA once ("failed call to cuInit")
        capture.seek(0)
        startup = capture.read().decode(errors="replace").strip()
    if startup:
        log.debug("TensorFlow start-up messages:\n%s", startup)


class ScriptParser(argparse.ArgumentParser):
    """argparse with two kindnesses: a mistyped flag gets "did you mean" (built into Python 3.14
    as ``suggest_on_error``), and an empty path, usually an unset environment variable in the
    command, is named instead of being read as the current folder."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            flags = [word for word in message.split(":", 1)[1].split() if word.startswith("--")]
            known = [option for option in self._option_string_actions if option.startswith("--")]
            guesses = [match[0] for flag in flags
                       if (match := difflib.get_close_matches(flag.split("=")[0], known, n=1))]
            if guesses:
                message += f" (did you mean {' '.join(guesses)}?)"
        super().error(message)

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for action in self._actions:
            value = getattr(parsed, action.dest, None)
            if takes_path(action) and "" in (value if isinstance(value, list) else [value]):
                flag = action.option_strings[-1] if action.option_strings else action.dest
                self.error(f"{flag} is empty; give a path (is an environment variable in the command unset?)")
        return parsed


def takes_path(action: argparse.Action) -> bool:
    """Whether an argument names a file or folder, by its metavar or its name."""
    return action.metavar in ("DIR", "FILE", "CSV", "H5", "PATH", "RUN_DIR", "ZIP") or \
        action.dest.endswith(("_dir", "_file")) or action.dest == "input"


def parser(description: str | None) -> argparse.ArgumentParser:
    """A script's parser: its docstring as description, ``--debug`` for every script."""
    result = ScriptParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--debug", action="store_true",
                        help="show tracebacks, debug messages and TensorFlow's start-up messages")
    return result


def add_run_arguments(arguments: argparse.ArgumentParser) -> None:
    """``--run-dir`` and ``--outputs-dir``, for the steps that work on a trained run."""
    arguments.add_argument("--run-dir", metavar="DIR",
                           help="training run folder (default: <outputs-dir>/latest)")
    arguments.add_argument("--outputs-dir", metavar="DIR", default=str(layout.OUTPUTS_DIR),
                           help="where 'latest' is looked for (default: %(default)s)")


def add_dataset_arguments(arguments: argparse.ArgumentParser, default_dir: str | None,
                          data_help: str = "the dataset's folder, or an image list's CSV") -> None:
    """``--data-dir``, ``--dataset`` and ``--malignant``, for the steps that read a dataset."""
    from skin_lesion.data.datasets import NAMES  # the registry: pandas, no TensorFlow

    default = f" (default: {default_dir})" if default_dir else ""
    arguments.add_argument("--data-dir", default=default_dir, metavar="DIR",
                           help=f"{data_help}{default}")
    arguments.add_argument("--dataset", choices=NAMES, metavar="NAME",
                           help=f"read the data as this dataset: {', '.join(NAMES)} (default: detected from "
                                "the files)")
    arguments.add_argument("--malignant", nargs="+", metavar="CODE",
                           help="the malignant classes of an image list or class folders that do not say "
                                "(or write labels.json beside them)")


def read_dataset(args: argparse.Namespace):
    """The dataset ``add_dataset_arguments`` describe."""
    from skin_lesion.data.datasets import load_dataset

    return load_dataset(args.data_dir, args.dataset, args.malignant)


def open_run(args: argparse.Namespace) -> layout.RunLayout:
    return layout.open_run(args.run_dir, args.outputs_dir)


METADATA_CSV = "a CSV with image_id, age, sex and localization columns"


def require_inputs(paths: list[str], name: str, wanted: str = "an image, a folder or a CSV of paths") -> None:
    """Stop before any work when an input path named on the command line does not exist."""
    for path in paths:
        if not Path(path).exists():
            raise MissingFileError(f"{name} {path} does not exist; give {wanted}.")


def require_model(args: argparse.Namespace, explained: bool = False) -> None:
    """``--model-file`` before any model loads: a path must exist (a model file or a SavedModel
    folder); a Hub model (hf://OWNER/NAME[/FORMAT]) is downloaded, or found in the Hub's cache,
    and ``args.model_file`` becomes its local path, so the later steps see a file. ``explained``:
    the model must have gradients (.h5, .keras), said before any wait."""
    from skin_lesion.export.catalogue import EXPLAINABLE_SUFFIXES
    from skin_lesion.export.hub import is_hub_name, pull

    if is_hub_name(args.model_file):
        args.model_file = str(pull(args.model_file))
    layout.ModelFileLayout(args.model_file).require()
    if explained and Path(args.model_file).suffix.lower() not in EXPLAINABLE_SUFFIXES:
        raise ConfigError(f"--model-file {args.model_file}: only .h5 and .keras models have gradients here, so "
                          "this one cannot be explained (06_infer.py scores it); pass the run's .h5 or the "
                          ".keras export (export/keras/model.keras, or hf://OWNER/NAME/keras).")


def needs_tensorflow(args: argparse.Namespace) -> bool:
    """Whether scoring with ``--model-file`` needs TensorFlow: not for TFLite and ONNX models, which
    run in their own runtimes on images decoded with OpenCV, so scoring starts in a fraction of a second."""
    from skin_lesion.export.catalogue import TENSORFLOW_FREE_SUFFIXES

    return not (args.model_file and Path(args.model_file).suffix.lower() in TENSORFLOW_FREE_SUFFIXES)


def bounded_number(kind: type, low: float, high: float | None = None,
                   low_inclusive: bool = True) -> Callable[[str], float]:
    """An argparse ``type`` that checks a number's range and says which range it wants."""
    above = f">= {low}" if low_inclusive else f"> {low}"
    wanted = f"a number {above}" + (f" and <= {high}" if high is not None else "")

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {wanted}") from None
        too_low = value < low if low_inclusive else value <= low
        if too_low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {wanted}")
        return value

    convert.__name__ = kind.__name__
    return convert


positive_int = bounded_number(int, 1)
non_negative_int = bounded_number(int, 0)
unit_fraction = bounded_number(float, 0, 1, low_inclusive=False)


def run(build_parser: Callable[[], argparse.ArgumentParser],
        main: Callable[[argparse.Namespace], int | None],
        tensorflow: bool | Callable[[argparse.Namespace], bool] = True,
        argv: list[str] | None = None, check: Callable[[argparse.Namespace], object] | None = None) -> None:
    """Parse the arguments, ``check`` them (paths, runs, outputs) before TensorFlow's seconds of
    start-up, start it quietly (``tensorflow``: whether to, or a function of the arguments that
    says) and run ``main``; exit 2 with one line on user errors."""
    args = build_parser().parse_args(argv)
    setup_logging(args.debug)
    try:
        if check:
            check(args)
        if tensorflow(args) if callable(tensorflow) else tensorflow:
            start_tensorflow(args.debug)
        code = main(args)
    except UserError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
