"""What every numbered script shares: logging set-up and turning known errors into messages."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

from src import layout
from src.data import DatasetError
from src.io_utils import OverwriteError

#: Errors caused by the input or the environment, not by a bug: shown as one clear message.
USER_ERRORS = (DatasetError, OverwriteError, FileNotFoundError, FileExistsError, ValueError,
               RuntimeError)


class HideLegacyH5Notice(logging.Filter):
    """Keras calls ``.h5`` legacy on every save; it is this project's portable model format."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "HDF5 file via `model.save()`" not in record.getMessage()


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a script's ``main`` with logging to the console; exit 2 with the message on errors."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(HideLegacyH5Notice())
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices and the like
    try:
        code = main(argv)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """``--run-dir`` and ``--outputs-dir``, for the steps that work on a trained run."""
    parser.add_argument("--run-dir", help="training run folder (default: <outputs-dir>/latest)")
    parser.add_argument("--outputs-dir", default=str(layout.OUTPUTS_DIR),
                        help="where 'latest' is looked for (default: %(default)s)")


def open_run(args: argparse.Namespace) -> layout.RunLayout:
    return layout.open_run(args.run_dir, args.outputs_dir)
