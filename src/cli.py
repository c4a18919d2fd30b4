"""What every numbered script shares: logging set-up and turning known errors into messages."""
from __future__ import annotations

import logging
import sys
from typing import Callable

from src.data import DatasetError
from src.io_utils import OverwriteError

#: Errors caused by the input or the environment, not by a bug: shown as one clear message.
USER_ERRORS = (DatasetError, OverwriteError, FileNotFoundError, FileExistsError, ValueError,
               RuntimeError)


def run(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> None:
    """Run a script's ``main`` with logging to the console; exit 2 with the message on errors."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    try:
        code = main(argv)
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
