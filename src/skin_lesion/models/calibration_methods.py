"""The calibration methods by name, which task each fits and which one ``auto`` picks.

Apart from the maps themselves (``skin_lesion.models.calibration``, which loads SciPy), so the
training settings can offer and check the names without loading it: ``--help`` stays fast.
"""
from __future__ import annotations

from skin_lesion.errors import ConfigError
from skin_lesion.tasks import BINARY, MULTICLASS, Task

METHODS = ("platt", "temperature", "bias_temperature", "none")
#: ``auto`` picks the task's default (:func:`default_method`); the settings offer it too.
AUTO = "auto"
CHOICES = (AUTO, *METHODS)
#: Methods that fit one task only.
ONLY_FOR = {"platt": BINARY, "bias_temperature": MULTICLASS}


def default_method(task: Task) -> str:
    """``auto``: Platt scaling for binary models, bias-corrected temperature for several classes."""
    return "platt" if task.is_binary else "bias_temperature"


def check_fits(method: str, kind: str) -> None:
    """Refuse a method that cannot fit the task ``kind`` (before training, not after it)."""
    if ONLY_FOR.get(method, kind) != kind:
        raise ConfigError(f"--calibration {method} is for {ONLY_FOR[method]} models, this run is "
                          f"{kind}; use {AUTO}, temperature or none.")
