"""tf.data input pipelines: an on-disk cache of resized images, batching and augmentation.

Decoding a 600x450 JPEG costs far more than a training step of a small model needs, so each
split's images are decoded and resized once into a ``.npy`` file (uint8, memory-mapped, never
held in RAM whole) and read back by batch. The cache is keyed by the files (path, size,
modification time), the target size and the decoder version: any change builds a new one.

Training batches are shuffled and augmented on the fly with one fused affine transform per
image (rotation, shift, zoom and both flips resampled once, by OpenCV) plus brightness and
contrast, all drawn from stateless seeds so a run is reproducible. Evaluation batches keep the split's order,
are never augmented, and the last partial batch is kept so no image is dropped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

from skin_lesion.data.dataset import check_missing_fraction
from skin_lesion.data.images import DECODER_VERSION, decode_files, decoding_error
from skin_lesion.errors import DatasetError
from skin_lesion.io_utils import atomic_path, exclusive, read_json, write_json_atomic
from skin_lesion.model_io import IMAGE_INPUT, METADATA_INPUT

log = logging.getLogger(__name__)

#: Augmentation seeds are (seed, epoch * stride + batch): distinct for up to this many batches an epoch.
BATCH_SEED_STRIDE = 1 << 20


@dataclass(frozen=True)
class Augmentation:
    """Random training transforms; ranges follow common Keras ``ImageDataGenerator`` set-ups."""

    rotation_degrees: float = 30.0
    shift_fraction: float = 0.1
    zoom_fraction: float = 0.15
    horizontal_flip: bool = True
    vertical_flip: bool = True
    brightness: float = 0.1  # shift, as a fraction of the 0-255 range
    contrast: float = 0.2  # factor range 1 +/- contrast

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageCache:
    """Resized uint8 images of one list of files, memory-mapped from ``path``."""

    path: Path
    images: np.ndarray
    failures: dict[int, str] = field(default_factory=dict)  # row -> decoding error


def cache_key(paths: list[str], size: tuple[int, int]) -> str:
    """Fingerprint of the files' identity and the output size."""
    digest = hashlib.sha256(json.dumps([DECODER_VERSION, list(size)]).encode())
    for path in paths:
        try:
            stat = Path(path).stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:20]


def load_or_build_cache(paths: list[str], size: tuple[int, int], cache_dir: Path,
                        description: str = "images") -> ImageCache:
    """The cache for ``paths`` at ``size``: reused if it exists, otherwise built once."""
    cache_dir = Path(cache_dir)
    stem = f"{description}_{size[0]}x{size[1]}_{cache_key(paths, size)}"
    array_path, manifest_path = cache_dir / f"{stem}.npy", cache_dir / f"{stem}.json"
    with exclusive(cache_dir / f"{stem}.lock"):
        if array_path.is_file() and manifest_path.is_file():
            manifest = read_json(manifest_path, "Image cache manifest")
            images = np.load(array_path, mmap_mode="r")
            if images.shape[0] == len(paths) and manifest.get("paths") == list(paths):
                return ImageCache(array_path, images,
                                  {int(row): error for row, error in manifest["failures"].items()})
        return build_cache(paths, size, array_path, manifest_path, description)


def build_cache(paths: list[str], size: tuple[int, int], array_path: Path, manifest_path: Path,
                description: str) -> ImageCache:
    decoded = np.zeros(len(paths), dtype=bool)
    with atomic_path(array_path) as partial:
        images = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8,
                                           shape=(len(paths), *size, 3))
        with tqdm(total=len(paths), desc=f"Caching {description} at {size[0]}x{size[1]}",
                  unit="img", leave=False, disable=None) as progress:  # None: terminals only
            for indices, batch in decode_files(paths, size):
                images[indices] = batch
                decoded[indices] = True
                progress.update(len(indices))
        images.flush()
        del images
    failures = {int(row): decoding_error(paths[row], size) for row in np.flatnonzero(~decoded)}
    write_json_atomic(manifest_path, {
        "paths": list(paths), "size": list(size), "decoder_version": DECODER_VERSION,
        "failures": {str(row): error for row, error in failures.items()},
    })
    log.info("Cached %d %s at %dx%d in %s", len(paths), description, *size, array_path)
    return ImageCache(array_path, np.load(array_path, mmap_mode="r"), failures)


@dataclass
class SplitImages:
    """The usable images of one split: their table rows and where they are in the cache."""

    table: pd.DataFrame
    cache: ImageCache
    rows: np.ndarray
    unusable: dict[str, str]  # image path -> why it cannot be used


def load_split_images(split_table: pd.DataFrame, split: str, size: tuple[int, int],
                      cache_dir: Path, source: str = "the split file") -> SplitImages:
    """Cache one split's images and set aside any that cannot be decoded, with the reasons.

    Broken files are reported here, before training starts, never in the middle of an epoch;
    5 % or more of them stop the run (see ``skin_lesion.data.check_missing_fraction``).
    """
    part = split_table[split_table["split"] == split].reset_index(drop=True)
    if part.empty:
        raise DatasetError(f"The {split} split in {source} has no images; recreate the split "
                           "with scripts/02_prepare_split.py.")
    paths = part["image_path"].tolist()
    cache = load_or_build_cache(paths, size, cache_dir, description=split)
    unusable = {paths[row]: error for row, error in sorted(cache.failures.items())}
    for path, error in unusable.items():
        log.warning("Cannot decode %s: %s", path, error)
    check_missing_fraction(list(unusable), len(paths), f"undecodable ({split} split)", source)
    rows = np.array([row for row in range(len(paths)) if row not in cache.failures], np.int64)
    return SplitImages(part.iloc[rows].reset_index(drop=True), cache, rows, unusable)


def augmentation_parameters(seed: tf.Tensor, batch: tf.Tensor, height: int, width: int,
                            augmentation: Augmentation) -> tuple[tf.Tensor, tf.Tensor]:
    """Random parameters for a batch, drawn from a stateless seed (reproducible).

    Returns one 2x3 affine map per image (output pixel to input pixel) and one
    (contrast, brightness) pair per image. Rotation, shift, zoom and flips are composed into a
    single map, so each image is resampled once instead of once per transform: output pixel p
    samples input M (p - c) + c - t, with M = R(-angle) F / zoom, c the centre, t the shift.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=8)

    def uniform(index: int, low: float, high: float) -> tf.Tensor:
        return tf.random.stateless_uniform([batch], seeds[index], low, high)

    def flip_sign(index: int, enabled: bool) -> tf.Tensor:
        return tf.where(uniform(index, 0, 1) < 0.5, -1.0, 1.0) if enabled else tf.ones([batch])

    angle = uniform(0, -1, 1) * math.radians(augmentation.rotation_degrees)
    zoom = uniform(1, 1 - augmentation.zoom_fraction, 1 + augmentation.zoom_fraction)
    shift_x = uniform(2, -1, 1) * augmentation.shift_fraction * width
    shift_y = uniform(3, -1, 1) * augmentation.shift_fraction * height
    flip_x = flip_sign(4, augmentation.horizontal_flip)
    flip_y = flip_sign(5, augmentation.vertical_flip)
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    m00, m01, m10, m11 = cos * flip_x, sin * flip_y, -sin * flip_x, cos * flip_y
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    offset_x = centre_x - m00 * centre_x - m01 * centre_y - shift_x
    offset_y = centre_y - m10 * centre_x - m11 * centre_y - shift_y
    matrices = tf.reshape(tf.stack([m00, m01, offset_x, m10, m11, offset_y], axis=1), [-1, 2, 3])
    contrast = uniform(6, 1 - augmentation.contrast, 1 + augmentation.contrast)
    brightness = uniform(7, -1, 1) * 255.0 * augmentation.brightness
    return matrices, tf.stack([contrast, brightness], axis=1)


def augment_images(source: np.ndarray, rows: np.ndarray, matrices: np.ndarray,
                   colour: np.ndarray) -> np.ndarray:
    """Apply each image's affine map (bilinear, mirrored borders) and colour change.

    ``source[rows]`` are the images. Runs per uint8 image in OpenCV, whose SIMD kernels are
    several times faster here than TensorFlow's projective transform on float batches, and read
    straight from the memory-mapped cache without an intermediate copy. The contrast factor c
    scales around the image mean m: x -> c x + (1 - c) m + brightness.
    """
    height, width = source.shape[1:3]
    augmented = np.empty((len(rows), *source.shape[1:]), source.dtype)
    for row, matrix, (contrast, brightness), out in zip(rows, matrices, colour, augmented):
        cv2.warpAffine(source[row], matrix, (width, height), dst=out,
                       flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                       borderMode=cv2.BORDER_REFLECT_101)
        mean = float(np.mean(cv2.mean(out)[:3]))
        cv2.convertScaleAbs(out, dst=out, alpha=float(contrast),
                            beta=(1 - float(contrast)) * mean + float(brightness))
    return augmented


def make_dataset(
    images: SplitImages,
    targets: np.ndarray,
    batch_size: int,
    training: bool,
    augmentation: Augmentation | None = None,
    seed: int = 0,
    metadata: np.ndarray | None = None,
    epochs: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Batches of ``(uint8 images 0-255, targets)`` for one split.

    Images stay uint8 (a quarter of the bytes of float32) until the model's float32 input
    casts them. ``targets`` (and ``metadata``, the encoded patient metadata, when given) have
    one row per usable image (``images.table``); with metadata the features are a dict with
    the model's two inputs, ``image`` and ``metadata``.

    Evaluation data yields ``ceil(n / batch_size)`` batches in table order, never augmented.
    Training data yields the epochs ``epochs[0]`` up to ``epochs[1]`` (global numbers, from 0)
    back to back, for ``fit(..., steps_per_epoch=ceil(n / batch_size))``: each epoch's order and
    augmentation are a function of ``(seed, epoch)`` alone, so a run resumed at epoch k sees
    exactly the batches the uninterrupted run would have.
    """
    targets = np.asarray(targets, np.float32)
    if len(targets) != len(images.rows) or (metadata is not None and len(metadata) != len(targets)):
        raise ValueError(f"{len(targets)} targets for {len(images.rows)} images.")
    cache_array = images.cache.images
    cache_rows = tf.constant(images.rows)
    target_table = tf.constant(targets)
    metadata_table = None if metadata is None else tf.constant(np.asarray(metadata, np.float32))
    height, width = cache_array.shape[1:3]

    def gather(cache_indices, matrices=None, colour=None) -> np.ndarray:
        if matrices is None:
            return np.asarray(cache_array[cache_indices])
        return augment_images(cache_array, cache_indices, matrices, colour)

    def load(positions: tf.Tensor, seed_pair: tf.Tensor | None = None):
        inputs = [tf.gather(cache_rows, positions)]
        if seed_pair is not None:
            inputs += augmentation_parameters(seed_pair, tf.shape(positions)[0], height, width,
                                              augmentation)
        batch = tf.numpy_function(gather, inputs, tf.uint8, stateful=False)
        batch = tf.ensure_shape(batch, [None, height, width, 3])
        if metadata_table is not None:
            batch = {IMAGE_INPUT: batch, METADATA_INPUT: tf.gather(metadata_table, positions)}
        return batch, tf.gather(target_table, positions)

    def epoch_batches(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(
            tf.range(len(images.rows), dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        if augmentation is None:
            return batches
        seeds = tf.data.Dataset.range(BATCH_SEED_STRIDE).map(
            lambda index: tf.stack([tf.constant(seed, tf.int64), epoch * BATCH_SEED_STRIDE + index]))
        return tf.data.Dataset.zip(batches, seeds)

    if training:
        dataset = tf.data.Dataset.range(*epochs).flat_map(epoch_batches)
    else:
        dataset = tf.data.Dataset.range(len(images.rows)).batch(batch_size)
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
