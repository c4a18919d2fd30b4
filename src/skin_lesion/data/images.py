"""Decoding and resizing image files: the one path every step uses.

The training cache, evaluation and inference all decode through :func:`decode_and_resize`, so a
file gets the same pixels wherever it is read. JPEGs are decoded at a reduced scale in the DCT
domain when the target size allows (a 600x450 frame for a 224x224 model decodes at 300x225),
which is twice as fast as a full decode and an anti-aliased downscale in itself; what remains
(less than about 2.5x) is done with an area (box) filter, several times cheaper than an
anti-aliased bilinear resize.
Grayscale, RGBA and CMYK files are converted to RGB; files that cannot be decoded (corrupt,
truncated, not an image) are reported with their error rather than stopping a run.
"""
from __future__ import annotations

import re
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

#: Bump when decoding or resizing changes, so that caches built by older code are not reused.
DECODER_VERSION = "1"
DCT_SCALES = (1, 2, 4, 8)


def decode_with_size(contents: tf.Tensor, size: tuple[int, int]) -> tuple[tf.Tensor, tf.Tensor]:
    """Encoded image bytes to a ``size`` (height, width) uint8 RGB image, and the file's own
    (height, width) (read from a JPEG's header, so the DCT-scaled decode keeps its speed)."""
    height, width = size

    def decode_jpeg() -> tuple[tf.Tensor, tf.Tensor]:
        shape = tf.io.extract_jpeg_shape(contents)
        scale_index = tf.add_n([
            tf.cast(tf.logical_and(shape[0] >= height * scale, shape[1] >= width * scale), tf.int32)
            for scale in DCT_SCALES[1:]
        ])
        branches = [
            (lambda scale=scale: tf.io.decode_jpeg(contents, channels=3, ratio=scale,
                                                   dct_method="INTEGER_ACCURATE"))
            for scale in DCT_SCALES
        ]
        return tf.switch_case(scale_index, branches), shape[:2]

    def decode_other() -> tuple[tf.Tensor, tf.Tensor]:
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        return image, tf.shape(image)[:2]

    image, original_size = tf.cond(tf.io.is_jpeg(contents), decode_jpeg, decode_other)
    image = tf.image.resize(image, size, method="area")
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8), original_size


def decode_and_resize(contents: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Encoded image bytes to a ``size`` (height, width) uint8 RGB image."""
    return decode_with_size(contents, size)[0]


def read_and_decode(path: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    return decode_and_resize(tf.io.read_file(path), size)


#: What a decoder message means, in plain words (the first pattern found decides).
PLAIN_REASONS = (("No such file", "file not found"), ("not found", "file not found"),
                 ("Unknown image file format", "not an image (JPEG, PNG, BMP, GIF or WebP)"),
                 ("JPEG", "damaged or truncated JPEG"))


def decoding_error(path: str, size: tuple[int, int], contents: bytes | None = None) -> str:
    """Why ``path`` (or its ``contents``, when already in memory) cannot be decoded (empty
    string if it can), in one line: plain words, then the decoder's own message in parentheses."""
    try:
        if contents is None:
            read_and_decode(tf.constant(path), size)
        else:
            decode_and_resize(tf.constant(contents), size)
    except tf.errors.OpError as error:
        message = re.sub(r"\{\{function_node [^}]*\}\}|\[Op:.*$", "", error.message, flags=re.S).strip()
        plain = next((reason for pattern, reason in PLAIN_REASONS if pattern in message), "cannot be decoded")
        return f"{plain} ({message or type(error).__name__})"
    return ""


def decode_files(
    paths: Sequence[str], size: tuple[int, int], batch_size: int = 64,
    contents: Sequence[bytes] | None = None, original_sizes: bool = False,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield ``(indices, images)`` batches for the decodable files among ``paths``, in order,
    with ``original_sizes`` also each file's own (height, width): ``(indices, images, sizes)``.

    Files run through a parallel ``tf.data`` map; the ones that fail are skipped there and show
    up as indices missing from the output, which callers explain with :func:`decoding_error`.
    Only one batch is in memory at a time. ``contents``, the files' bytes already in memory
    (the web app's uploads), are decoded as they are, so nothing is written to disk to be read.
    """
    if not len(paths):
        return
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.range(len(paths), dtype=tf.int64), tf.constant(list(paths if contents is None else contents)))
    )
    read = tf.io.read_file if contents is None else tf.identity
    dataset = dataset.map(lambda index, source: (index, *decode_with_size(read(source), size)),
                          num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.ignore_errors().batch(batch_size).prefetch(2)
    for indices, images, sizes in dataset.as_numpy_iterator():
        yield (indices, images, sizes) if original_sizes else (indices, images)
