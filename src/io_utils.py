"""Small file helpers shared by every step: atomic writes, hashing, overwrite protection.

Every result is written to a temporary name beside its destination and renamed into place,
so an interrupted step never leaves a partial file behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


class OverwriteError(FileExistsError):
    """Raised instead of replacing an earlier result that the user did not ask to replace."""


def refuse_overwrite(path: Path, force: bool, what: str = "file") -> None:
    """Raise OverwriteError if ``path`` exists and ``force`` is false."""
    if Path(path).exists() and not force:
        raise OverwriteError(
            f"{what} {path} already exists; pass --force to replace it, "
            "or choose another output location."
        )


@contextlib.contextmanager
def atomic_path(destination: Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place on success.

    The temporary name keeps the destination's suffix (or ``suffix``) so that libraries which
    pick a format from the file name (Keras, matplotlib, NumPy) write the right format.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=suffix or "".join(destination.suffixes[-1:]),
        dir=destination.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.replace(tmp_path, destination)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON (stable bytes for identical data)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: Path, what: str = "file") -> Any:
    """Read a JSON file with an error that names it and says what produces it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{what} {path} is not valid JSON: {error}") from error


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
