"""How numbers are written where people read them (console lines, the app, figure titles).

A score of 0.99988 printed as ``1.000`` reads as certainty the model never has, so scores are
written ``> 0.999`` or ``< 0.001`` once they round to 1 or 0. Files (CSV, JSON) keep full
precision; only the text meant for people goes through here. No imports beyond the standard
library, so the app and the scripts can use it before TensorFlow starts.
"""
from __future__ import annotations

from typing import Sequence


def score_text(value: float, digits: int = 3) -> str:
    """``0.812``; ``> 0.999`` or ``< 0.001`` where rounding would print 1 or 0."""
    text = f"{value:.{digits}f}"
    step = 10.0 ** -digits
    if float(text) >= 1:
        return f"> {1 - step:.{digits}f}"
    if float(text) <= 0:
        return f"< {step:.{digits}f}"
    return text


def interval_text(interval: Sequence[float], digits: int = 2) -> str:
    """``95 % CI 0.83–1.00``, or ``95 % CI -0.059 to 0.013`` where a dash would read as a minus."""
    low, high = (f"{bound:.{digits}f}" for bound in interval)
    return f"95 % CI {low}{' to ' if low.startswith('-') else '–'}{high}"
