"""Small file helpers shared by every step: atomic writes, staging folders, JSON, hashing,
locks and a captured standard error.

Every result is written to a temporary name beside its destination and renamed into place,
so an interrupted step never leaves a partial file behind. ``tempfile`` creates private files
(0600) and folders (0700); they are given the mode the process's umask asks for before they
are renamed, so colleagues on a shared server can read the results as with any other file.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from skin_lesion.errors import ConfigError, MissingFileError, OverwriteError


def current_umask() -> int:
    """The process's umask (reading it means setting it, so it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: Read once: the umask does not change while a script runs.
UMASK = current_umask()


def refuse_overwrite(path: Path, force: bool, what: str = "file", elsewhere: str = "") -> None:
    """Raise OverwriteError if ``path`` exists and ``force`` is false; the message names the
    flag that writes elsewhere (``elsewhere``, e.g. ``--output CSV``) where the step has one."""
    if Path(path).exists() and not force:
        other = f", or write elsewhere with {elsewhere}" if elsewhere else ""
        raise OverwriteError(f"{what} {path} already exists; pass --force to replace it{other}.")


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
    os.fchmod(fd, 0o666 & ~UMASK)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        os.replace(tmp_path, destination)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def staging_dir(destination: Path, replace: bool = False) -> Iterator[Path]:
    """Yield an empty folder beside ``destination``; it becomes ``destination`` on success.

    On failure the folder and everything in it is removed, so a half-built dataset is never
    left where a later step would find it. With ``replace`` an existing ``destination`` is
    removed once the new one is complete.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    staging.chmod(0o777 & ~UMASK)
    try:
        yield staging
        if replace and destination.exists():
            old = staging.with_name(staging.name + ".old")
            destination.rename(old)
            shutil.rmtree(old)
        staging.rename(destination)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented, key-sorted JSON (stable bytes for identical data)."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


class JSONReadError(ConfigError):
    """A JSON file that exists but cannot be read; ``reason`` says why, without the path."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def read_json(path: Path, what: str = "file") -> Any:
    """Read a JSON file with an error that names it (``what`` says what the file is for)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} {path} not found.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        reason = f"is not valid JSON (line {error.lineno} column {error.colno})"
        raise JSONReadError(f"{what} {path} {reason}: {error.msg}.", reason) from error
    except (OSError, UnicodeDecodeError) as error:
        reason = f"cannot be read ({error.__class__.__name__})"
        raise JSONReadError(f"{what} {path} {reason}: {error}", reason) from error


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path``: processes that want the same file (the workers
    of a multi-worker run or parallel search trials wanting one image cache) wait for the
    first to build it."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def stderr_captured() -> Iterator[tempfile.TemporaryFile]:
    """Point file descriptor 2 at a temporary file for a while.

    TensorFlow's C++ libraries write start-up notices (absl, oneDNN, CUDA probing) straight to
    the descriptor before ``TF_CPP_MIN_LOG_LEVEL`` takes effect; Python's ``sys.stderr`` never
    sees them. What was captured is written back if the block fails.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield capture
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            sys.stderr.write(capture.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
