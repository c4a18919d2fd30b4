"""Decoding without TensorFlow, for the models that score without it (TFLite, ONNX).

Importing TensorFlow takes seconds; a TFLite or ONNX model scores an image in milliseconds, so
the decoder must not be what brings TensorFlow in. This module takes the same two steps as
``skin_lesion.data.images`` with OpenCV: a JPEG decoded at 1/2, 1/4 or 1/8 scale in the DCT
domain when the target size allows (``cv2.IMREAD_REDUCED_COLOR_*``; Pillow reads the header
only, for the file's size, as ``tf.io.extract_jpeg_shape`` does), then an area resize
(``cv2.INTER_AREA``). The pixels differ from TensorFlow's by one level at most, in a fraction
of a percent of them, which moved the demo model's scores by 0.0003 at most (measured on the
sample images: README, "Use a model elsewhere"; tested in tests/test_export.py). EXIF
orientation is ignored, as TensorFlow ignores it.
"""
from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

#: The DCT scales a JPEG can be decoded at, and OpenCV's flag for each (1: a full decode).
REDUCED_READS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                 8: cv2.IMREAD_REDUCED_COLOR_8}


class DecodingError(ValueError):
    """A file that cannot be decoded; the message says why in plain words."""


def header(contents: bytes) -> tuple[str, tuple[int, int]]:
    """The file's format and (height, width), from its header alone (no pixels decoded)."""
    try:
        with Image.open(io.BytesIO(contents)) as image:
            return image.format or "", (image.height, image.width)
    except (UnidentifiedImageError, OSError) as error:
        raise DecodingError(f"not an image (JPEG, PNG, BMP, GIF or WebP) ({error})") from error


def dct_scale(original: tuple[int, int], size: tuple[int, int]) -> int:
    """The largest DCT scale that still leaves at least ``size``, as ``data.images`` chooses it."""
    return max(scale for scale in REDUCED_READS
               if original[0] >= size[0] * scale and original[1] >= size[1] * scale or scale == 1)


def decode_with_size(contents: bytes, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Encoded image bytes to a ``size`` (height, width) uint8 RGB image, and the file's own
    (height, width) (the out-of-distribution flag's size check needs it)."""
    kind, original = header(contents)
    scale = dct_scale(original, size) if kind == "JPEG" else 1
    image = cv2.imdecode(np.frombuffer(contents, np.uint8), REDUCED_READS[scale] | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise DecodingError("damaged or truncated JPEG" if kind == "JPEG" else f"cannot be decoded ({kind} file)")
    image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return image, original


def read_and_decode(path: str, size: tuple[int, int], contents: bytes | None = None):
    """A file (or its bytes already in memory) decoded, or a DecodingError that says why."""
    if contents is None:
        try:
            contents = Path(path).read_bytes()
        except OSError as error:
            raise DecodingError(f"file not found ({error.strerror})" if isinstance(error, FileNotFoundError)
                                else f"cannot be read ({error})") from error
    return decode_with_size(contents, size)


def decoding_error(path: str, size: tuple[int, int], contents: bytes | None = None) -> str:
    """Why ``path`` cannot be decoded (empty string if it can), in one line, as ``data.images`` says it."""
    try:
        read_and_decode(path, size, contents)
    except DecodingError as error:
        return str(error)
    return ""


def decode_files(
    paths: Sequence[str], size: tuple[int, int], batch_size: int = 64,
    contents: Sequence[bytes] | None = None, original_sizes: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
    """``data.images.decode_files`` with OpenCV: ``(indices, images[, sizes])`` batches of the
    decodable files, in order; files that fail are missing from ``indices`` (callers explain
    them with :func:`decoding_error`). OpenCV releases the GIL, so a thread per core decodes."""
    def attempt(index: int):
        try:
            return index, *read_and_decode(paths[index], size, None if contents is None else contents[index])
        except DecodingError:
            return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for start in range(0, len(paths), batch_size):
            done = [item for item in pool.map(attempt, range(start, min(start + batch_size, len(paths)))) if item]
            if not done:
                continue
            indices = np.array([index for index, _, _ in done], np.int64)
            images = np.stack([image for _, image, _ in done])
            sizes = np.array([shape for _, _, shape in done], np.int32)
            yield (indices, images, sizes) if original_sizes else (indices, images)
